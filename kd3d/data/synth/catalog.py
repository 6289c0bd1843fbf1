"""Object catalogue of the synthetic generator: sizes, colours, LiDAR reflectivity and the
box primitives each object is drawn with.

Sizes are the means / spreads of the real nuScenes annotations (``l w h`` in metres). Every
object is annotated with one box but rendered as one or more axis-aligned primitives in its
own frame (x forward, y left, z up, origin at the box centre), e.g. a car is a body plus a
narrower glass cabin, a cyclist is a bicycle plus a rider, a bicycle rack is a low rail.
"""
from __future__ import annotations

import numpy as np

from kd3d.structures.classes import NUSC_LIDARSEG_CATEGORIES

SEG = {name: i for i, name in enumerate(NUSC_LIDARSEG_CATEGORIES)}

# category -> (mean l w h, std l w h)
SIZES: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "vehicle.car": ((4.63, 1.96, 1.74), (0.35, 0.12, 0.15)),
    "vehicle.truck": ((6.94, 2.52, 2.85), (1.2, 0.2, 0.35)),
    "vehicle.bus.rigid": ((11.2, 2.94, 3.47), (0.8, 0.1, 0.2)),
    "vehicle.bus.bendy": ((17.5, 2.95, 3.35), (0.5, 0.1, 0.1)),
    "vehicle.trailer": ((12.3, 2.90, 3.87), (1.5, 0.15, 0.3)),
    "vehicle.construction": ((6.38, 2.73, 3.19), (0.8, 0.2, 0.3)),
    "human.pedestrian.adult": ((0.73, 0.67, 1.77), (0.08, 0.08, 0.09)),
    "human.pedestrian.child": ((0.50, 0.50, 1.25), (0.05, 0.05, 0.1)),
    "human.pedestrian.construction_worker": ((0.75, 0.70, 1.78), (0.08, 0.08, 0.08)),
    "human.pedestrian.police_officer": ((0.73, 0.68, 1.80), (0.05, 0.05, 0.05)),
    "vehicle.motorcycle": ((2.11, 0.77, 1.47), (0.15, 0.08, 0.1)),
    "vehicle.bicycle": ((1.70, 0.60, 1.28), (0.1, 0.06, 0.1)),
    "movable_object.trafficcone": ((0.41, 0.41, 1.07), (0.03, 0.03, 0.1)),
    "movable_object.barrier": ((2.49, 0.48, 0.98), (0.2, 0.05, 0.05)),
    "movable_object.pushable_pullable": ((0.9, 0.6, 1.1), (0.1, 0.1, 0.1)),
    "static_object.bicycle_rack": ((5.0, 1.5, 1.2), (1.0, 0.1, 0.05)),
}

# lidarseg category -> RGB in [0, 1]: distinct hues so the class is learnable from pixels.
COLORS: dict[str, tuple[float, float, float]] = {
    "vehicle.car": (0.15, 0.30, 0.80),
    "vehicle.truck": (0.85, 0.45, 0.10),
    "vehicle.bus.rigid": (0.90, 0.80, 0.15),
    "vehicle.bus.bendy": (0.80, 0.85, 0.20),
    "vehicle.trailer": (0.55, 0.30, 0.60),
    "vehicle.construction": (0.95, 0.65, 0.00),
    "human.pedestrian.adult": (0.85, 0.15, 0.15),
    "human.pedestrian.child": (0.95, 0.35, 0.55),
    "human.pedestrian.construction_worker": (0.95, 0.55, 0.10),
    "human.pedestrian.police_officer": (0.10, 0.15, 0.45),
    "vehicle.motorcycle": (0.55, 0.10, 0.35),
    "vehicle.bicycle": (0.10, 0.70, 0.65),
    "movable_object.trafficcone": (1.00, 0.40, 0.05),
    "movable_object.barrier": (0.95, 0.95, 0.95),
    "movable_object.pushable_pullable": (0.45, 0.35, 0.25),
    "static_object.bicycle_rack": (0.40, 0.40, 0.45),
    "static.manmade": (0.62, 0.50, 0.42),
    "static.vegetation": (0.20, 0.50, 0.15),
    "flat.driveable_surface": (0.28, 0.28, 0.30),
    "flat.sidewalk": (0.70, 0.68, 0.62),
    "flat.terrain": (0.45, 0.55, 0.25),
    "vehicle.ego": (0.2, 0.2, 0.2),
}

# LiDAR reflectivity (nuScenes intensity scale 0..255) per lidarseg category.
REFLECTIVITY: dict[str, float] = {
    "vehicle.car": 45.0, "vehicle.truck": 50.0, "vehicle.bus.rigid": 55.0, "vehicle.bus.bendy": 55.0,
    "vehicle.trailer": 45.0, "vehicle.construction": 60.0, "human.pedestrian.adult": 20.0,
    "human.pedestrian.child": 20.0, "human.pedestrian.construction_worker": 90.0,
    "human.pedestrian.police_officer": 60.0, "vehicle.motorcycle": 35.0, "vehicle.bicycle": 30.0,
    "movable_object.trafficcone": 140.0, "movable_object.barrier": 110.0,
    "movable_object.pushable_pullable": 25.0, "static_object.bicycle_rack": 40.0,
    "static.manmade": 35.0, "static.vegetation": 18.0, "flat.driveable_surface": 8.0,
    "flat.sidewalk": 22.0, "flat.terrain": 12.0, "vehicle.ego": 30.0,
}
MARKING_REFLECTIVITY = 120.0

# Number of the 32 lidarseg categories -> colour / reflectivity lookup tables.
SEG_COLORS = np.array([COLORS.get(n, (0.5, 0.5, 0.5)) for n in NUSC_LIDARSEG_CATEGORIES], dtype=np.float64)
SEG_REFLECTIVITY = np.array([REFLECTIVITY.get(n, 30.0) for n in NUSC_LIDARSEG_CATEGORIES], dtype=np.float64)

GLASS = np.array([0.12, 0.16, 0.22])


def sample_size(category: str, rng: np.random.Generator) -> np.ndarray:
    """(3,) ``l w h`` drawn around the nuScenes mean, clipped to +-2.5 std."""
    mean, std = SIZES[category]
    z = np.clip(rng.standard_normal(3), -2.5, 2.5)
    return np.maximum(np.asarray(mean) + z * np.asarray(std), 0.1)


def make_prims(category: str, lwh, *, rider: bool, sitting: bool, rng: np.random.Generator):
    """Render primitives of one object, in its own box frame.

    Returns ``boxes`` (P, 6) float64 ``cx cy cz l w h`` (centre offsets from the box centre),
    ``colors`` (P, 3) RGB and ``segs`` (P,) lidarseg indices. All primitives lie inside the
    annotation box ``lwh``.
    """
    l, w, h = (float(v) for v in lwh)
    base = np.asarray(COLORS[category]) * rng.uniform(0.8, 1.1)
    base = np.clip(base, 0, 1)
    seg = SEG[category]
    prims: list[tuple[tuple[float, ...], np.ndarray]] = []
    if category == "vehicle.car":
        hb = 0.55 * h
        prims.append(((0, 0, -h / 2 + hb / 2, l, w, hb), base))
        prims.append(((-0.08 * l, 0, -h / 2 + hb + (h - hb) / 2, 0.55 * l, 0.88 * w, h - hb), 0.4 * base + GLASS))
    elif category in ("vehicle.truck", "vehicle.construction"):
        lc = min(2.2, 0.35 * l)
        prims.append(((l / 2 - lc / 2, 0, -0.1 * h, lc, w, 0.8 * h), base))
        prims.append(((l / 2 - lc / 2 + 0.05, 0, 0.35 * h, lc - 0.1, 0.9 * w, 0.3 * h), 0.4 * base + GLASS))
        cargo = (0.7, 0.7, 0.7) if category == "vehicle.truck" else (0.35, 0.3, 0.2)
        prims.append(((-lc / 2, 0, 0, l - lc, w, h), np.asarray(cargo) * 0.5 + 0.5 * base))
    elif category.startswith("vehicle.bus"):
        prims.append(((0, 0, -0.15 * h, l, w, 0.7 * h), base))
        prims.append(((0, 0, 0.35 * h, l, w, 0.3 * h), 0.45 * base + GLASS))
    elif category.startswith("human.pedestrian"):
        hl = 0.45 * h
        prims.append(((0, 0, -h / 2 + hl / 2, 0.5 * l, 0.6 * w, hl), 0.35 * base))
        prims.append(((0, 0, -h / 2 + hl + (0.42 * h) / 2, 0.7 * l, w, 0.42 * h), base))
        prims.append(((0, 0, h / 2 - 0.065 * h, 0.35 * l, 0.35 * w, 0.13 * h), np.array([0.85, 0.7, 0.55])))
    elif category in ("vehicle.bicycle", "vehicle.motorcycle"):
        hf = 0.55 * h if rider else h
        prims.append(((0, 0, -h / 2 + hf / 2, l, 0.45 * w, hf), base))
        if rider:
            rider_c = np.asarray(COLORS["human.pedestrian.adult"]) * 0.8
            prims.append(((-0.1 * l, 0, -h / 2 + hf + (h - hf) / 2, 0.35 * l, w, h - hf), rider_c))
    elif category == "static_object.bicycle_rack":
        prims.append(((0, w / 2 - 0.05, -h / 2 + 0.35, l, 0.1, 0.7), base))
    else:
        prims.append(((0, 0, 0, l, w, h), base))
    if sitting:
        prims = [((0, 0, 0, l, w, h), base)]
    boxes = np.array([p[0] for p in prims], dtype=np.float64)
    colors = np.clip(np.array([p[1] for p in prims], dtype=np.float64), 0, 1)
    return boxes, colors, np.full(len(prims), seg, dtype=np.int64)
