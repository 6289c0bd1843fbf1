"""Evaluators for :data:`kd3d.engine.evaluation.EVALUATORS`: model predictions -> result files
(with :mod:`kd3d.eval.formats`) -> official-protocol metrics (:mod:`kd3d.eval`).

Every evaluator takes ``(results, dataset, out_dir, **kwargs)`` where ``results`` is
``{sample token: prediction dict}`` (see :mod:`kd3d.models.base`) and returns a flat dict of
floats (``mAP``, ``NDS``, ``AP/<class>``, ... for detection).
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from kd3d.structures.classes import NUSC_DET_CLASSES


@functools.lru_cache(maxsize=2)
def _nuscenes_tables(dataroot: str, version: str):
    from nuscenes import NuScenes

    return NuScenes(version=version, dataroot=dataroot, verbose=False)


def _label_map(names, target, where: str) -> np.ndarray:
    unknown = [n for n in names if n not in target]
    if unknown:
        raise ValueError(f"{where}: classes {unknown} are not in {target}")
    return np.array([target.index(n) for n in names], np.int64)


def nuscenes_det(results: dict, dataset, out_dir=None, *, class_names=None, max_boxes: int = 500,
                 verbose: bool = False, format_only: bool = False) -> dict[str, float]:
    """Write ``out_dir/results_nusc.json`` (official submission format, boxes moved LiDAR ->
    ego -> global with each sample's poses) and evaluate it with kd3d's devkit-exact nuScenes
    detection evaluation against ``dataset``'s split (``detection_cvpr_2019``).

    ``class_names``: the model's label order (default ``dataset.class_names``). At most
    ``max_boxes`` highest-scoring boxes per sample are kept (the submission limit).
    ``format_only``: write the submission and skip the metrics (the test split has no GT).
    """
    from kd3d.eval.formats import boxes_from_kd3d, to_submission, write_submission
    from kd3d.eval.nuscenes_det import evaluate_nuscenes

    names = tuple(class_names or dataset.class_names)
    lut = _label_map(names, NUSC_DET_CLASSES, "nuscenes_det class_names")
    tokens = list(dataset.tokens)
    missing = [t for t in tokens if t not in results]
    if missing:
        raise ValueError(f"nuscenes_det: no predictions for {len(missing)} of {len(tokens)} samples, e.g. {missing[:3]}")
    boxes, scores, labels, attrs, l2e, e2g = [], [], [], [], [], []
    for t, e in zip(tokens, dataset.entries):
        r = results[t]
        order = np.argsort(-np.asarray(r["scores"]), kind="stable")[:max_boxes]
        boxes.append(r["boxes"][order])
        scores.append(np.asarray(r["scores"])[order])
        labels.append(lut[np.asarray(r["labels"], np.int64)[order]])
        attrs.append(None if r.get("attrs") is None else np.asarray(r["attrs"], np.int64)[order])
        l2e.append(np.asarray(e["lidar2ego"], np.float64))
        e2g.append(np.asarray(e["ego2global"], np.float64))
    nb = boxes_from_kd3d(tokens, boxes, scores, labels, l2e, e2g, attrs)
    submission = to_submission(nb)
    if out_dir is not None:
        write_submission(Path(out_dir) / "results_nusc.json", nb)
    if format_only:
        if out_dir is None:
            raise ValueError("nuscenes_det: format_only needs an output folder (kd3d test --out DIR)")
        return {"num_samples": float(len(tokens)), "num_boxes": float(len(nb))}
    nusc = _nuscenes_tables(str(Path(dataset.dataroot).resolve()), dataset.version)
    res = evaluate_nuscenes(nusc, dataset.split, submission, out_dir=out_dir, verbose=verbose)
    s = res.summary
    metrics = {"mAP": float(s["mean_ap"]), "NDS": float(s["nd_score"])}
    short = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}
    metrics.update({short.get(k, k): float(v) for k, v in s["tp_errors"].items()})
    metrics.update({f"AP/{c}": float(v) for c, v in s["mean_dist_aps"].items()})
    return metrics


def nuscenes_seg(results: dict, dataset, out_dir=None, **kwargs) -> dict[str, float]:
    """lidarseg: write ``<lidar_sd_token>_lidarseg.bin`` predictions and compute mIoU."""
    try:
        from kd3d.eval import nuscenes_seg as seg
    except ImportError as exc:
        raise NotImplementedError(f"nuscenes_seg evaluation needs kd3d.eval.nuscenes_seg ({exc})") from exc
    return seg.evaluate_engine_results(results, dataset, out_dir, **kwargs)


def kitti_det(results: dict, dataset, out_dir=None, **kwargs) -> dict[str, float]:
    """KITTI: write label-format result files and run the official-protocol evaluation."""
    try:
        from kd3d.eval import kitti_io
    except ImportError as exc:
        raise NotImplementedError(f"kitti evaluation needs kd3d.eval.kitti_io ({exc})") from exc
    return kitti_io.evaluate_engine_results(results, dataset, out_dir, **kwargs)
