"""Generated KITTI label/result folders for tests and benchmarks (random but plausible objects).

GT objects of all KITTI types (incl. Van, Person_sitting, DontCare, Misc) with random
truncation/occlusion/2D heights spanning the difficulty limits; results are perturbed GT copies
(some with small 2D heights, some of the wrong class) plus false positives; scores are rounded
so ties occur.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kd3d.data.kitti_format import format_label_line, write_split_file

_TYPES = ("Car", "Car", "Car", "Van", "Pedestrian", "Pedestrian", "Person_sitting", "Cyclist", "Truck", "Misc",
          "DontCare")
_DIMS = {"Car": (1.5, 1.6, 3.9), "Van": (2.2, 1.9, 5.0), "Pedestrian": (1.75, 0.6, 0.8),
         "Person_sitting": (1.2, 0.6, 0.8), "Cyclist": (1.7, 0.6, 1.8), "Truck": (3.2, 2.5, 10.0),
         "Misc": (1.5, 1.5, 3.0), "DontCare": (-1, -1, -1)}


def _object(rng, typ):
    if typ == "DontCare":
        x1, y1 = rng.uniform(0, 1100), rng.uniform(100, 300)
        bbox = (x1, y1, x1 + rng.uniform(10, 120), y1 + rng.uniform(10, 60))
        return dict(typ=typ, trunc=-1, occ=-1, alpha=-10, bbox=bbox, dims=(-1, -1, -1),
                    loc=(-1000, -1000, -1000), ry=-10)
    h, w, l = np.array(_DIMS[typ]) * rng.uniform(0.85, 1.15, 3)
    z = rng.uniform(5, 60)
    x = rng.uniform(-0.6, 0.6) * z
    y = 1.65 + rng.normal(0, 0.1)
    ry = rng.uniform(-np.pi, np.pi)
    height_px = 720 * h / z  # focal ~720 px
    u = 620 + 720 * x / z
    v2 = 190 + 720 * y / z
    width_px = 720 * max(l, w) / z
    bbox = (u - width_px / 2, v2 - height_px, u + width_px / 2, v2)
    alpha = ry - np.arctan2(x, z)
    return dict(typ=typ, trunc=float(rng.choice([0.0, 0.0, 0.1, 0.2, 0.4, 0.6])), occ=int(rng.integers(0, 3)),
                alpha=alpha, bbox=bbox, dims=(h, w, l), loc=(x, y, z), ry=ry)


def write_kitti_case(out_dir, frames: int, seed: int = 0, objects: int = 8, p_detect: float = 0.8,
                     false_positives: int = 3, p_duplicate: float = 0.0) -> tuple[Path, Path, Path]:
    """Write ``label_2/``, ``results/`` and ``val.txt`` under ``out_dir``; returns their paths.
    ``p_duplicate``: probability of a second detection of the same object (competing candidates)."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    gt_dir, res_dir = out / "label_2", out / "results"
    gt_dir.mkdir(parents=True, exist_ok=True)
    res_dir.mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(frames)]
    for fid in ids:
        gts = [_object(rng, _TYPES[rng.integers(len(_TYPES))]) for _ in range(rng.integers(0, 2 * objects))]
        dets = []
        for o in gts:
            if o["typ"] in ("DontCare", "Misc", "Truck") or rng.random() > p_detect:
                continue
            d = dict(o)
            shift = rng.normal(0, 0.1, 3) * np.array([1, 0.5, 1])
            d["loc"] = tuple(np.array(o["loc"]) + shift)
            d["dims"] = tuple(np.array(o["dims"]) * rng.uniform(0.9, 1.1, 3))
            d["ry"] = o["ry"] + rng.normal(0, 0.2)
            d["alpha"] = o["alpha"] + rng.normal(0, 0.2)
            d["bbox"] = tuple(np.array(o["bbox"]) + rng.normal(0, 3, 4))
            d["typ"] = {"Van": "Car", "Person_sitting": "Pedestrian"}.get(o["typ"], o["typ"])
            d["score"] = round(float(rng.uniform(0.3, 1.0)), 2)
            dets.append(d)
            if rng.random() < p_duplicate:  # a second, slightly different detection of the same object
                dup = dict(d)
                dup["loc"] = tuple(np.array(d["loc"]) + rng.normal(0, 0.05, 3))
                dup["bbox"] = tuple(np.array(d["bbox"]) + rng.normal(0, 2, 4))
                dup["score"] = round(float(rng.uniform(0.3, 1.0)), 1)
                dets.append(dup)
        for _ in range(rng.integers(0, false_positives + 1)):
            d = _object(rng, ("Car", "Pedestrian", "Cyclist")[rng.integers(3)])
            d["score"] = round(float(rng.uniform(0.0, 0.7)), 2)
            dets.append(d)
        (gt_dir / f"{fid}.txt").write_text("".join(
            format_label_line(o["typ"], o["trunc"], o["occ"], o["alpha"], o["bbox"], o["dims"], o["loc"],
                              o["ry"]) + "\n"
            for o in gts))
        (res_dir / f"{fid}.txt").write_text("".join(
            format_label_line(d["typ"], -1, -1, d["alpha"], d["bbox"], d["dims"], d["loc"], d["ry"], d["score"]) + "\n"
            for d in dets))
    split = out / "val.txt"
    write_split_file(split, ids)
    return gt_dir, res_dir, split
