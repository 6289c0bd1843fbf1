"""KITTI 3D object evaluation: 2D bbox, BEV, 3D and AOS AP at R11 and R40, as the official
``evaluate_object.cpp`` (2019+), for Car / Pedestrian / Cyclist at easy / moderate / hard.

Label files (one per frame, ``<id>.txt``): ``type truncated occluded alpha x1 y1 x2 y2 h w l
x y z ry [score]`` in the rectified camera frame (x right, y down, z forward; ``x y z`` is the
*bottom* centre; ``ry`` rotation about y). Result files have the same layout plus ``score``.
The format, split files and the difficulty rule live in :mod:`kd3d.data.kitti_format`; the
engine's evaluator (result writing) is :mod:`kd3d.eval.kitti_io`.

Geometry (double precision, exact polygon clipping, identical boxes give IoU 1): BEV IoU of the
ground-plane rectangles (centre ``(x, z)``, ``l`` along the heading, ``w`` across, the devkit's
``toPolygon``); 3D IoU = BEV intersection x overlap of ``[y - h, y]`` / union volume; 2D IoU of
the image boxes. DontCare regions absorb false positives when the detection's overlap with them,
relative to the detection's own area/volume, exceeds the class threshold. Matching and curves:
:mod:`kd3d.eval.kitti_match`. Difference from the devkit: a class that has no detection at all is
reported with AP 0 (the devkit skips it); a class without valid GT gives NaN.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kd3d.data.kitti_format import DIFFICULTIES, MAX_OCCLUSION, MAX_TRUNCATION, MIN_HEIGHT, gt_ignored, read_label_file
from kd3d.data.kitti_format import read_split_file as read_split
from kd3d.eval.kitti_match import ap_r11, ap_r40, eval_curves
from kd3d.ops.iou3d import rect_intersection_aligned

log = logging.getLogger(__name__)

CLASSES = ("Car", "Pedestrian", "Cyclist")
NEIGHBOUR = {"car": "van", "pedestrian": "person_sitting"}
MIN_OVERLAP = {"Car": 0.7, "Pedestrian": 0.5, "Cyclist": 0.5}
METRICS = ("bbox", "bev", "3d")
_GT_TYPES = ("car", "van", "pedestrian", "person_sitting", "cyclist")


@dataclass
class KittiLabels:
    """All objects of many frames, one row each. ``frame`` (N,) index into ``frame_ids``;
    ``type`` (N,) lower-case names; truncation, occlusion, alpha, score (N,); bbox (N, 4)
    ``x1 y1 x2 y2``; dims (N, 3) ``h w l``; loc (N, 3) bottom centre, camera frame; ry (N,)."""

    frame_ids: list[str]
    frame: np.ndarray
    type: np.ndarray
    truncation: np.ndarray
    occlusion: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray
    dims: np.ndarray
    loc: np.ndarray
    ry: np.ndarray
    score: np.ndarray = field(default=None)

    def __len__(self) -> int:
        return len(self.frame)


def load_labels(folder, frame_ids, is_result: bool) -> KittiLabels:
    """Parse ``<folder>/<id>.txt`` for every id (GT: 15 fields, a 16th ignored; results: exactly
    16 with the score). Errors name the file and line (:func:`kd3d.data.kitti_format.read_label_file`)."""
    folder = Path(folder)
    types, blocks, frames = [], [], []
    for i, fid in enumerate(frame_ids):
        t, v = read_label_file(folder / f"{fid}.txt", result=is_result)
        types.extend(x.lower() for x in t)
        blocks.append(v)
        frames.append(np.full(len(t), i, np.int64))
    n = len(types)
    num = np.concatenate(blocks) if blocks else np.zeros((0, 15))
    frames = np.concatenate(frames) if frames else np.zeros(0, np.int64)
    types = np.array(types, dtype=object) if n else np.zeros(0, dtype=object)
    score = num[:, 14] if is_result else np.zeros(n)
    if is_result:
        keep = score >= -1000.0  # the devkit drops scores below MIN_SCORE
        types, num, score, frames = types[keep], num[keep], score[keep], frames[keep]
    return KittiLabels(list(frame_ids), frames, types, num[:, 0], num[:, 1].astype(np.int64),
                       num[:, 2], num[:, 3:7], num[:, 7:10], num[:, 10:13], num[:, 13], score)


def _same_frame_pairs(frame_a: np.ndarray, frame_b: np.ndarray, n_frames: int):
    """All (i, j) with frame_a[i] == frame_b[j]; i ascending, then j ascending."""
    order = np.argsort(frame_b, kind="stable")
    counts = np.bincount(frame_b, minlength=n_frames)
    starts = np.cumsum(counts) - counts
    per = counts[frame_a]
    i = np.repeat(np.arange(len(frame_a)), per)
    ramp = np.arange(per.sum()) - np.repeat(np.cumsum(per) - per, per)
    return i, order[np.repeat(starts[frame_a], per) + ramp]


def _box2d(a: np.ndarray, b: np.ndarray, own: bool) -> np.ndarray:
    w = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    h = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    den = area_a if own else area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w <= 0) | (h <= 0), 0.0, inter / den)


def _ground(lab: KittiLabels, idx: np.ndarray) -> np.ndarray:
    """(K, 5) ground rectangles ``x z l w -ry`` (same polygon as the devkit's toPolygon)."""
    return np.stack([lab.loc[idx, 0], lab.loc[idx, 2], lab.dims[idx, 2], lab.dims[idx, 1], -lab.ry[idx]], axis=1)


def _overlaps(det: KittiLabels, di, gt: KittiLabels, gi, own: bool) -> dict[str, np.ndarray]:
    """Overlaps of pairs (det di[k], gt gi[k]) for the three metrics; ``own``: relative to the
    detection's area/volume (DontCare criterion 0) instead of the union."""
    out = {"bbox": _box2d(det.bbox[di], gt.bbox[gi], own)}
    ra, rb = _ground(det, di), _ground(gt, gi)
    rad = 0.5 * (np.hypot(ra[:, 2], ra[:, 3]) + np.hypot(rb[:, 2], rb[:, 3]))
    near = np.flatnonzero((ra[:, 0] - rb[:, 0]) ** 2 + (ra[:, 1] - rb[:, 1]) ** 2 <= rad * rad * (1 + 1e-9))
    inter = np.zeros(len(di))
    inter[near] = rect_intersection_aligned(ra[near], rb[near])
    area_a, area_b = ra[:, 2] * ra[:, 3], rb[:, 2] * rb[:, 3]
    y_d, y_g = det.loc[di, 1], gt.loc[gi, 1]
    h_d, h_g = det.dims[di, 0], gt.dims[gi, 0]
    inter_vol = inter * np.maximum(0.0, np.minimum(y_d, y_g) - np.maximum(y_d - h_d, y_g - h_g))
    vol_a, vol_b = area_a * h_d, area_b * h_g
    with np.errstate(divide="ignore", invalid="ignore"):
        out["bev"] = np.nan_to_num(inter / (area_a if own else area_a + area_b - inter))
        out["3d"] = np.nan_to_num(inter_vol / (vol_a if own else vol_a + vol_b - inter_vol))
    return out


@dataclass
class KittiResult:
    """``table[cls][metric][R11|R40]`` = [easy, moderate, hard] AP in percent (metric in
    bbox/bev/3d/aos); ``curves[cls][metric][difficulty]`` 41-point precision (AOS) curves."""

    table: dict
    curves: dict = field(repr=False)

    def format(self) -> str:
        lines = []
        for cls, metrics in self.table.items():
            th = MIN_OVERLAP[cls]
            for rec in ("R11", "R40"):
                lines.append(f"{cls} AP_{rec}@{th:.2f}, {th:.2f}, {th:.2f}:")
                for m in ("bbox", "bev", "3d", "aos"):
                    if m in metrics:
                        v = metrics[m][rec]
                        lines.append(f"{m:<4s} AP:{v[0]:.4f}, {v[1]:.4f}, {v[2]:.4f}")
        return "\n".join(lines)

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / "kitti_metrics.json"
        path.write_text(json.dumps({"table": self.table, "curves": self.curves}, indent=1))
        return path


def evaluate_labels(gt: KittiLabels, det: KittiLabels, classes=CLASSES, progress: bool = False) -> KittiResult:
    """AP tables from parsed GT and detections sharing ``frame_ids``."""
    if gt.frame_ids != det.frame_ids:
        raise ValueError("GT and results must cover the same frames in the same order")
    n_frames = len(gt.frame_ids)
    compute_aos = len(det) == 0 or not np.any(det.alpha == -10)
    relevant = np.flatnonzero(np.isin(gt.type, _GT_TYPES))
    di, k = _same_frame_pairs(det.frame, gt.frame[relevant], n_frames)
    gi = relevant[k]
    ov = _overlaps(det, di, gt, gi, own=False)
    sim = (1.0 + np.cos(gt.alpha[gi] - det.alpha[di])) / 2.0
    dc = np.flatnonzero(gt.type == "dontcare")
    dj, dk = _same_frame_pairs(det.frame, gt.frame[dc], n_frames)
    dc_ov = _overlaps(det, dj, gt, dc[dk], own=True)
    height_gt = gt.bbox[:, 3] - gt.bbox[:, 1]
    height_det = np.abs(det.bbox[:, 1] - det.bbox[:, 3])
    table, curves = {}, {}
    todo = [(c, d, m) for c in classes for d in range(3) for m in METRICS]
    if progress:
        from tqdm import tqdm

        todo = tqdm(todo, desc="KITTI eval", leave=False)
    for cls, d, metric in todo:
        name = cls.lower()
        thr = MIN_OVERLAP[cls]
        valid_class = np.where(gt.type == name, 1, np.where(gt.type == NEIGHBOUR.get(name, "\0"), 0, -1))
        hard = gt_ignored(d, height_gt, gt.occlusion, gt.truncation)
        gt_ign = np.where((valid_class == 1) & ~hard, 0, np.where((valid_class == 0) | (valid_class == 1), 1, -1))
        det_ign = np.where(height_det < MIN_HEIGHT[d], 1, np.where(det.type == name, 0, -1))
        sel = ov[metric] > thr
        dc_hit = np.zeros(len(det), bool)
        dc_hit[dj[dc_ov[metric] > thr]] = True
        use_aos = metric == "bbox" and compute_aos
        res = eval_curves({"det": di[sel], "gt": gi[sel], "ov": ov[metric][sel]}, gt_ign, det_ign, det.score,
                          gt.frame, n_frames, dc_hit, sim[sel] if use_aos else None)
        t = table.setdefault(cls, {})
        c = curves.setdefault(cls, {})
        for key, prec in ((metric, res["precision"]), ("aos", res["aos"])):
            if prec is None:
                continue
            entry = t.setdefault(key, {"R11": [0.0] * 3, "R40": [0.0] * 3})
            entry["R11"][d] = ap_r11(prec)
            entry["R40"][d] = ap_r40(prec)
            c.setdefault(key, {})[DIFFICULTIES[d]] = prec.tolist()
    for cls in table:  # print order bbox, bev, 3d, aos
        table[cls] = {m: table[cls][m] for m in ("bbox", "bev", "3d", "aos") if m in table[cls]}
    return KittiResult(table, curves)


def evaluate_kitti(gt_dir, result_dir, split_file=None, classes=CLASSES, out_dir=None,
                   progress: bool = True, verbose: bool = False) -> KittiResult:
    """Evaluate a KITTI result folder against a label folder (frames from ``split_file``, or
    every ``*.txt`` of ``gt_dir``); writes ``kitti_metrics.json`` to ``out_dir`` if given."""
    gt_dir = Path(gt_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"label folder not found: {gt_dir}")
    if not Path(result_dir).is_dir():
        raise FileNotFoundError(f"result folder not found: {result_dir}")
    ids = read_split(split_file) if split_file else sorted(p.stem for p in gt_dir.glob("*.txt"))
    if not ids:
        raise ValueError(f"{gt_dir}: no label files (*.txt)")
    gt = load_labels(gt_dir, ids, is_result=False)
    det = load_labels(result_dir, ids, is_result=True)
    res = evaluate_labels(gt, det, classes, progress=progress)
    if out_dir is not None:
        res.write(out_dir)
    if verbose:
        log.info("%s", res.format())
    return res
