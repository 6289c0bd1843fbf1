"""Colours for kd3d's pictures: class palettes, colour maps and per-point colouring.

Everything returns ``uint8`` RGB arrays so the renderers (numpy/PIL rasterisation, the HTML
viewer, open3d export) share one definition of every colour.
"""
from __future__ import annotations

import numpy as np

from kd3d.structures.classes import NUSC_DET_CLASSES, NUSC_LIDARSEG_CLASSES

# One distinct colour per nuScenes detection class (index = class index), RGB uint8.
CLASS_COLORS = np.array(
    [
        [255, 158, 0],    # car: orange
        [255, 99, 71],    # truck: tomato
        [255, 69, 0],     # bus: orange-red
        [233, 150, 70],   # trailer: dark salmon
        [255, 215, 0],    # construction_vehicle: gold
        [0, 0, 230],      # pedestrian: blue
        [255, 61, 99],    # motorcycle: red-pink
        [220, 20, 60],    # bicycle: crimson
        [47, 79, 79],     # traffic_cone: dark slate
        [112, 128, 144],  # barrier: slate grey
    ],
    dtype=np.uint8,
)

# Box colours for ground truth and predictions when boxes are not coloured by class.
GT_COLOR = (0, 200, 0)
PRED_COLOR = (230, 0, 230)

# The 17 nuScenes-lidarseg coarse classes (index 0 = ignore), close to the devkit's palette.
LIDARSEG_COLORS = np.array(
    [
        [0, 0, 0], [112, 128, 144], [220, 20, 60], [255, 127, 80], [255, 158, 0], [233, 150, 70],
        [255, 61, 99], [0, 0, 230], [47, 79, 79], [255, 140, 0], [255, 99, 71], [0, 207, 191],
        [175, 0, 75], [75, 0, 75], [112, 180, 60], [222, 184, 135], [0, 175, 0],
    ],
    dtype=np.uint8,
)
assert len(CLASS_COLORS) == len(NUSC_DET_CLASSES) and len(LIDARSEG_COLORS) == len(NUSC_LIDARSEG_CLASSES)

COLOR_BY = ("height", "intensity", "label", "time", "depth", "none")


# Class name (lower case) -> palette row, so KITTI and nuScenes classes share colours.
NAME_TO_PALETTE = {name: i for i, name in enumerate(NUSC_DET_CLASSES)}
NAME_TO_PALETTE.update({"pedestrian": 5, "cyclist": 7, "van": 0, "person_sitting": 5, "tram": 2, "misc": 9})


def class_color(label: int, class_names=None) -> tuple[int, int, int]:
    """RGB of detection class ``label``. With ``class_names`` (the dataset's class tuple) the
    colour follows the class *name* (KITTI ``Pedestrian`` = nuScenes ``pedestrian``, ``Cyclist``
    = ``bicycle``); otherwise the index into :data:`CLASS_COLORS` (wrapping around)."""
    label = int(label)
    if class_names is not None and 0 <= label < len(class_names):
        row = NAME_TO_PALETTE.get(str(class_names[label]).lower())
        if row is not None:
            return tuple(int(v) for v in CLASS_COLORS[row])
    return tuple(int(v) for v in CLASS_COLORS[label % len(CLASS_COLORS)])


def colormap(values: np.ndarray, vmin: float | None = None, vmax: float | None = None,
             cmap: str = "viridis") -> np.ndarray:
    """(N,) float -> (N, 3) uint8 through a matplotlib colour map, normalised to [vmin, vmax].

    NaN values map to mid grey. ``vmin``/``vmax`` default to the finite min/max.
    """
    from matplotlib import colormaps

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(v)
    if vmin is None:
        vmin = float(v[finite].min()) if finite.any() else 0.0
    if vmax is None:
        vmax = float(v[finite].max()) if finite.any() else 1.0
    t = np.clip((v - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)
    rgb = (colormaps[cmap](np.where(finite, t, 0.0))[:, :3] * 255).round().astype(np.uint8)
    rgb[~finite] = 128
    return rgb


def point_colors(points: np.ndarray, color_by: str = "height", labels: np.ndarray | None = None,
                 *, zrange: tuple[float, float] = (-3.0, 3.0), depth_max: float = 60.0) -> np.ndarray:
    """Per-point RGB for a LiDAR cloud.

    ``points``: (N, >=3) LiDAR frame ``x y z [intensity dt]``.
    ``color_by``:
      ``height``    z through ``turbo`` over ``zrange`` (low blue, high red);
      ``intensity`` column 3 through ``inferno``, scaled by the cloud's 99th percentile;
      ``time``      column 4 (sweep time lag, s) through ``cool``: key frame (0) cyan;
      ``label``     ``labels`` (N,) lidarseg coarse labels through :data:`LIDARSEG_COLORS`
                    (points without a label, i.e. beyond ``len(labels)``, are grey);
      ``depth``     xy range through ``jet_r`` up to ``depth_max``;
      ``none``      uniform light grey.
    Returns (N, 3) uint8.
    """
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"point_colors: points must be (N, >=3), got {p.shape}")
    n = p.shape[0]
    if color_by == "height":
        return colormap(p[:, 2], *zrange, cmap="turbo")
    if color_by == "intensity":
        if p.shape[1] < 4:
            raise ValueError(f"point_colors(color_by='intensity'): points need column 3 (intensity), got {p.shape}")
        hi = float(np.percentile(p[:, 3], 99)) if n else 1.0
        return colormap(p[:, 3], 0.0, max(hi, 1e-6), cmap="inferno")
    if color_by == "time":
        if p.shape[1] < 5:
            raise ValueError(f"point_colors(color_by='time'): points need column 4 (dt), got {p.shape}")
        hi = float(p[:, 4].max()) if n else 1.0
        return colormap(p[:, 4], 0.0, max(hi, 1e-6), cmap="cool")
    if color_by == "label":
        if labels is None:
            raise ValueError("point_colors(color_by='label'): the sample has no points_label (lidarseg labels)")
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if labels.size and (labels.min() < 0 or labels.max() >= len(LIDARSEG_COLORS)):
            raise ValueError(f"point_colors: labels must lie in [0, {len(LIDARSEG_COLORS)}), "
                             f"got [{labels.min()}, {labels.max()}]")
        rgb = np.full((n, 3), 128, dtype=np.uint8)
        k = min(n, labels.size)
        rgb[:k] = LIDARSEG_COLORS[labels[:k]]
        return rgb
    if color_by == "depth":
        return colormap(np.linalg.norm(p[:, :2], axis=1), 0.0, depth_max, cmap="jet_r")
    if color_by == "none":
        return np.full((n, 3), 200, dtype=np.uint8)
    raise ValueError(f"point_colors: color_by must be one of {COLOR_BY}, got {color_by!r}")
