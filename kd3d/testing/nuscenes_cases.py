"""Generated nuScenes-style detection cases (GT + predictions in memory) for tests and benches.

Predictions are perturbed GT copies plus false positives, with the awkward cases the protocol
must get right: score ties (scores rounded), scores of exactly 0, NaN GT velocities, GT without
attribute, classes without GT or without predictions, empty samples, zero-point GT.
"""
from __future__ import annotations

import numpy as np

from kd3d.eval.formats import NuscBoxes
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_CLASS_ATTRIBUTES, NUSC_DET_CLASSES

_ATTR_INDEX = {a: i for i, a in enumerate(NUSC_ATTRIBUTES)}


def _yaw_quat(yaw: np.ndarray) -> np.ndarray:
    return np.stack([np.cos(yaw / 2), np.zeros_like(yaw), np.zeros_like(yaw), np.sin(yaw / 2)], axis=1)


def _attrs(rng, labels: np.ndarray, p_missing: float) -> np.ndarray:
    out = np.full(len(labels), -1, np.int64)
    for k, c in enumerate(labels):
        allowed = NUSC_CLASS_ATTRIBUTES[NUSC_DET_CLASSES[c]]
        if allowed and rng.random() >= p_missing:
            out[k] = _ATTR_INDEX[allowed[rng.integers(len(allowed))]]
    return out


def make_case(n_samples: int, n_gt: int, n_pred: int, seed: int = 0, *, extent: float = 60.0,
              classes=None, skip_pred_classes=(), score_decimals: int = 2, p_zero_score: float = 0.02,
              p_nan_vel: float = 0.1, p_no_attr: float = 0.05, p_zero_pts: float = 0.03,
              p_empty: float = 0.05) -> tuple[NuscBoxes, NuscBoxes]:
    """(gt, pred) over ``n_samples`` samples, about ``n_gt`` GT and ``n_pred`` predictions each.

    ``classes``: indices of classes that get GT (default all but ``construction_vehicle``, so one
    class has predictions without GT); ``skip_pred_classes``: classes never predicted.
    """
    rng = np.random.default_rng(seed)
    tokens = [f"sample_{seed}_{i:05d}" for i in range(n_samples)]
    gt_classes = np.array(classes if classes is not None else
                          [c for c in range(len(NUSC_DET_CLASSES)) if NUSC_DET_CLASSES[c] != "construction_vehicle"])
    n_g = np.where(rng.random(n_samples) < p_empty, 0, n_gt)
    g_sample = np.repeat(np.arange(n_samples), n_g)
    ng = len(g_sample)
    g_label = gt_classes[rng.integers(len(gt_classes), size=ng)]
    g_xyz = np.c_[rng.uniform(-extent, extent, (ng, 2)), rng.uniform(-2, 2, ng)]
    g_size = rng.uniform(0.4, 6.0, (ng, 3))
    g_yaw = rng.uniform(-np.pi, np.pi, ng)
    g_vel = rng.normal(0, 3, (ng, 2))
    g_vel[rng.random(ng) < p_nan_vel] = np.nan
    g_pts = np.where(rng.random(ng) < p_zero_pts, 0, rng.integers(1, 500, ng))
    gt = NuscBoxes(tokens, g_sample, g_xyz, g_size, _yaw_quat(g_yaw), g_vel, g_label, np.full(ng, -1.0),
                   _attrs(rng, g_label, p_no_attr), g_pts)

    n_p = np.where(n_g == 0, rng.integers(0, 2, n_samples) * n_pred // 4, n_pred)
    p_sample = np.repeat(np.arange(n_samples), n_p)
    npr = len(p_sample)
    # each prediction copies a random GT of its sample (when there is one) or is a pure false positive
    start = np.cumsum(n_g) - n_g
    has_gt = n_g[p_sample] > 0
    src = np.where(has_gt, start[p_sample] + (rng.random(npr) * np.maximum(n_g[p_sample], 1)).astype(np.int64), 0)
    fp = ~has_gt | (rng.random(npr) < 0.3)
    p_label = np.where(fp, rng.integers(len(NUSC_DET_CLASSES), size=npr), g_label[src] if ng else 0)
    noise = rng.exponential(0.8, npr)[:, None] * rng.normal(size=(npr, 2))
    p_xy = np.where(fp[:, None], rng.uniform(-extent, extent, (npr, 2)), (g_xyz[src, :2] if ng else 0) + noise)
    p_z = rng.uniform(-2, 2, npr)
    p_size = np.where(fp[:, None], rng.uniform(0.4, 6.0, (npr, 3)),
                      (g_size[src] if ng else 1) * rng.uniform(0.7, 1.3, (npr, 3)))
    p_yaw = np.where(fp, rng.uniform(-np.pi, np.pi, npr), (g_yaw[src] if ng else 0) + rng.normal(0, 0.5, npr))
    p_vel = np.nan_to_num(g_vel[src] if ng else np.zeros((npr, 2))) + rng.normal(0, 1, (npr, 2))
    score = np.round(rng.random(npr) * np.where(fp, 0.6, 1.0), score_decimals)
    score[rng.random(npr) < p_zero_score] = 0.0
    p_attr = _attrs(rng, p_label, 0.0)
    keep = ~np.isin(p_label, np.asarray(skip_pred_classes, dtype=np.int64))
    pred = NuscBoxes(tokens, p_sample, np.c_[p_xy, p_z], p_size, _yaw_quat(p_yaw), p_vel, p_label, score, p_attr)
    return gt, pred.select(keep)
