"""kd3d detections -> KITTI result files, and the engine's KITTI evaluator.

``write_results(folder, frame_id, boxes, scores, names, calib, image_shape)`` writes one result
file in the devkit's format (camera frame, bottom centre, ``h w l``, ``ry``, ``alpha``, the 2D box
from the projected corners, score). :func:`evaluate_engine_results` evaluates
``{frame_id: {"boxes": Boxes3D (LiDAR frame), "scores", "labels"}}`` against a
:class:`kd3d.data.kitti.KittiDataset` split.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from kd3d.data.kitti_format import DIFFICULTIES, format_label_line, read_calib
from kd3d.data.kitti_format import image_shape as read_image_shape
from kd3d.eval.kitti import evaluate_labels, load_labels

log = logging.getLogger(__name__)


def write_results(folder, frame_id: str, boxes, scores, names, calib, image_shape=None) -> Path:
    """Write ``<folder>/<frame_id>.txt``. ``boxes``: Boxes3D in the LiDAR frame; ``names`` (K,)
    KITTI class names; ``calib``: KittiCalib; ``image_shape`` (H, W) clips the 2D boxes."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kb = boxes.to_kitti(calib, image_shape) if len(boxes) else None
    lines = [format_label_line(names[k], None, -1, kb.alpha[k], kb.bbox[k], kb.dimensions[k], kb.location[k],
                               kb.rotation_y[k], scores[k], digits=4, score_digits=6) + "\n" for k in range(len(boxes))]
    path = folder / f"{frame_id}.txt"
    path.write_text("".join(lines))
    return path


def evaluate_engine_results(results: dict, dataset, out_dir=None, verbose: bool = False) -> dict[str, float]:
    """Engine evaluator: write result files (to ``out_dir/kitti_results`` or a temp folder) and
    return flat metrics ``<Class>/<metric>_<R11|R40>_<difficulty>`` plus
    ``mAP/<metric>_R40_moderate`` over the evaluated classes."""
    ids = list(dataset.tokens)
    missing = [i for i in ids if i not in results]
    if missing:
        raise ValueError(f"kitti: no predictions for {len(missing)} of {len(ids)} frames, e.g. {missing[:3]}")
    names = tuple(dataset.class_names)
    with tempfile.TemporaryDirectory() as tmp:
        res_dir = Path(out_dir) / "kitti_results" if out_dir is not None else Path(tmp)
        for fid in ids:
            r = results[fid]
            calib = read_calib(dataset.folder / "calib", fid)
            shape = read_image_shape(dataset.folder / "image_2" / f"{fid}.png")
            labels = np.asarray(r["labels"], np.int64)
            write_results(res_dir, fid, r["boxes"], np.asarray(r["scores"]), [names[c] for c in labels], calib,
                          shape)
        gt = load_labels(dataset.folder / "label_2", ids, is_result=False)
        det = load_labels(res_dir, ids, is_result=True)
    classes = [c for c in names if c in ("Car", "Pedestrian", "Cyclist")]
    res = evaluate_labels(gt, det, classes)
    if out_dir is not None:
        res.write(out_dir)
    if verbose:
        log.info("%s", res.format())
    flat = {}
    for cls, metrics in res.table.items():
        for m, recs in metrics.items():
            for rec, vals in recs.items():
                for d, v in zip(DIFFICULTIES, vals):
                    flat[f"{cls}/{m}_{rec}_{d}"] = float(v)
    for m in ("bbox", "bev", "3d"):
        vals = [res.table[c][m]["R40"][1] for c in res.table if m in res.table[c]]
        if vals:
            flat[f"mAP/{m}_R40_moderate"] = float(np.nanmean(vals)) if not np.isnan(vals).all() else float("nan")
    return flat

