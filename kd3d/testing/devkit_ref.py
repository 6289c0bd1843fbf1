"""The official nuscenes-devkit pipeline on in-memory boxes: the oracle for tests and benchmarks.

:func:`devkit_metrics` converts :class:`~kd3d.eval.formats.NuscBoxes` into devkit ``EvalBoxes``
and runs the devkit's own ``accumulate`` / ``calc_ap`` / ``calc_tp`` / ``DetectionMetrics``
exactly as ``DetectionEval.evaluate`` does (no file I/O, no ``NuScenes`` object). Requires
nuscenes-devkit.
"""
from __future__ import annotations

import time

import numpy as np

from kd3d.eval.formats import NuscBoxes
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES


def to_eval_boxes(boxes: NuscBoxes, is_gt: bool):
    """NuscBoxes -> devkit ``EvalBoxes`` (every sample token present, order kept)."""
    from nuscenes.eval.common.data_classes import EvalBoxes
    from nuscenes.eval.detection.data_classes import DetectionBox

    eb = EvalBoxes()
    per_sample = [[] for _ in boxes.sample_tokens]
    for k in range(len(boxes)):
        s = int(boxes.sample_idx[k])
        a = int(boxes.attr[k])
        per_sample[s].append(DetectionBox(
            sample_token=boxes.sample_tokens[s],
            translation=tuple(float(v) for v in boxes.translation[k]),
            size=tuple(float(v) for v in boxes.size[k]),
            rotation=tuple(float(v) for v in boxes.rotation[k]),
            velocity=tuple(float(v) for v in boxes.velocity[k]),
            num_pts=int(boxes.num_pts[k]),
            detection_name=NUSC_DET_CLASSES[boxes.label[k]],
            detection_score=-1.0 if is_gt else float(boxes.score[k]),
            attribute_name=NUSC_ATTRIBUTES[a] if a >= 0 else "",
        ))
    for token, lst in zip(boxes.sample_tokens, per_sample):
        eb.add_boxes(token, lst)
    return eb


def devkit_metrics(gt_eb, pred_eb) -> tuple[dict, dict, float]:
    """Run the devkit's metric pipeline on ``EvalBoxes``; returns (summary, details, seconds).

    Timed: ``accumulate`` for every class and threshold, ``calc_ap``, ``calc_tp`` and the
    ``DetectionMetrics`` summary (the part of ``DetectionEval.evaluate`` after loading/filtering).
    """
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.algo import accumulate, calc_ap, calc_tp
    from nuscenes.eval.detection.constants import TP_METRICS
    from nuscenes.eval.detection.data_classes import DetectionMetricDataList, DetectionMetrics

    cfg = config_factory("detection_cvpr_2019")
    start = time.perf_counter()
    mdl = DetectionMetricDataList()
    for name in cfg.class_names:
        for th in cfg.dist_ths:
            mdl.set(name, th, accumulate(gt_eb, pred_eb, name, cfg.dist_fcn_callable, th))
    metrics = DetectionMetrics(cfg)
    for name in cfg.class_names:
        for th in cfg.dist_ths:
            metrics.add_label_ap(name, th, calc_ap(mdl[(name, th)], cfg.min_recall, cfg.min_precision))
        for metric in TP_METRICS:
            md = mdl[(name, cfg.dist_th_tp)]
            if name in ["traffic_cone"] and metric in ["attr_err", "vel_err", "orient_err"]:
                tp = np.nan
            elif name in ["barrier"] and metric in ["attr_err", "vel_err"]:
                tp = np.nan
            else:
                tp = calc_tp(md, cfg.min_recall, metric)
            metrics.add_label_tp(name, metric, tp)
    elapsed = time.perf_counter() - start
    metrics.add_runtime(elapsed)
    return metrics.serialize(), mdl.serialize(), elapsed


def compare_summaries(ours: dict, ref: dict, atol: float = 1e-9) -> list[str]:
    """Differences between two metrics summaries (every label AP, TP error, mAP, NDS)."""
    bad = []

    def close(a, b):
        a, b = float(a), float(b)
        return (np.isnan(a) and np.isnan(b)) or abs(a - b) <= atol

    for name, aps in ref["label_aps"].items():
        for th, ap in aps.items():
            if not close(ours["label_aps"][name][float(th)], ap):
                bad.append(f"AP {name}@{th}: {ours['label_aps'][name][float(th)]} vs {ap}")
    for name, tps in ref["label_tp_errors"].items():
        for m, v in tps.items():
            if not close(ours["label_tp_errors"][name][m], v):
                bad.append(f"{m} {name}: {ours['label_tp_errors'][name][m]} vs {v}")
    for key in ("mean_ap", "nd_score"):
        if not close(ours[key], ref[key]):
            bad.append(f"{key}: {ours[key]} vs {ref[key]}")
    for key in ("tp_errors", "tp_scores", "mean_dist_aps"):
        for m, v in ref[key].items():
            if not close(ours[key][m], v):
                bad.append(f"{key}[{m}]: {ours[key][m]} vs {v}")
    return bad
