"""Non-maximum suppression for BEV detections (greedy, by descending score).

* :func:`circle_nms` suppresses by BEV centre distance (CenterPoint's circle NMS): a box is
  dropped when its xy centre lies strictly closer than ``radius`` metres to a kept box with a
  higher score.
* :func:`rotated_nms` suppresses by exact rotated BEV IoU (:func:`kd3d.ops.iou3d.bev_iou`):
  a box is dropped when its IoU with a kept, higher-scoring box is strictly above
  ``iou_threshold``.
* :func:`batched_nms` runs either one per group (e.g. per class) by offsetting groups apart.

All functions take numpy arrays or torch tensors and return the kept indices into the input,
ordered by descending score, as int64 of the same kind (numpy -> numpy, torch -> torch on the
input's device). Ties in score are broken by the lower index first (stable sort).
"""
from __future__ import annotations

import numpy as np
import torch


def _to_numpy(x, name: str, ndim: int) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"nms: {name} must have {ndim} dims, got shape {arr.shape}")
    return arr


def _wrap(keep: np.ndarray, like):
    keep = np.asarray(keep, dtype=np.int64)
    if isinstance(like, torch.Tensor):
        return torch.as_tensor(keep, dtype=torch.int64, device=like.device)
    return keep


def _order(scores: np.ndarray, pre_max: int | None) -> np.ndarray:
    order = np.argsort(-scores, kind="stable")
    if pre_max is not None:
        order = order[:pre_max]
    return order


def _greedy(overlap: np.ndarray, post_max: int | None) -> np.ndarray:
    """Greedy selection on a (N, N) boolean 'suppresses' matrix already in score order."""
    n = overlap.shape[0]
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        if post_max is not None and len(keep) >= post_max:
            break
        suppressed |= overlap[i]
    return np.asarray(keep, dtype=np.int64)


def circle_nms(centers, scores, radius: float, *, pre_max: int | None = None, post_max: int | None = None):
    """Circle NMS on BEV centres.

    centers: (N, 2+) xy in metres (extra columns ignored); scores: (N,).
    radius: suppression radius in metres (distance strictly below ``radius`` suppresses).
    pre_max: keep only the top ``pre_max`` scores before NMS; post_max: at most this many kept.
    Returns kept indices (K,) int64 into the input, by descending score.
    """
    c = _to_numpy(centers, "centers", 2)
    s = _to_numpy(scores, "scores", 1)
    if c.shape[0] != s.shape[0] or c.shape[1] < 2:
        raise ValueError(f"circle_nms: centers (N, 2+) and scores (N,) disagree: {c.shape} vs {s.shape}")
    if radius < 0:
        raise ValueError(f"circle_nms: radius must be >= 0, got {radius}")
    order = _order(s, pre_max)
    xy = c[order, :2]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    keep = order[_greedy(d2 < radius * radius, post_max)]
    return _wrap(keep, scores)


def rotated_nms(boxes, scores, iou_threshold: float, *, pre_max: int | None = None,
                post_max: int | None = None):
    """Rotated BEV NMS with exact IoU.

    boxes: (N, 7+) ``x y z l w h yaw ...`` (LiDAR frame, Boxes3D layout); scores: (N,).
    A box is suppressed when its BEV IoU with a kept higher-scoring box is > ``iou_threshold``.
    Returns kept indices (K,) int64 into the input, by descending score.
    """
    from kd3d.ops.iou3d import bev_iou

    b = _to_numpy(boxes, "boxes", 2)
    s = _to_numpy(scores, "scores", 1)
    if b.shape[0] != s.shape[0] or b.shape[1] < 7:
        raise ValueError(f"rotated_nms: boxes (N, 7+) and scores (N,) disagree: {b.shape} vs {s.shape}")
    order = _order(s, pre_max)
    if order.size == 0:
        return _wrap(order, scores)
    iou = np.asarray(bev_iou(b[order, :7], b[order, :7]), dtype=np.float64)
    over = iou > iou_threshold
    np.fill_diagonal(over, False)
    keep = order[_greedy(over, post_max)]
    return _wrap(keep, scores)


def batched_nms(boxes, scores, groups, *, mode: str = "circle", radius: float = 1.0,
                iou_threshold: float = 0.2, pre_max: int | None = None, post_max: int | None = None):
    """NMS independently within each group (e.g. class label).

    boxes: (N, 7+) Boxes3D layout; scores: (N,); groups: (N,) int group ids.
    mode: ``"circle"`` (uses ``radius``) or ``"rotated"`` (uses ``iou_threshold``).
    Groups are moved far apart in x so boxes of different groups never interact.
    Returns kept indices (K,) int64 by descending score over all groups.
    """
    b = _to_numpy(boxes, "boxes", 2).copy()
    s = _to_numpy(scores, "scores", 1)
    g = _to_numpy(groups, "groups", 1)
    if not (b.shape[0] == s.shape[0] == g.shape[0]):
        raise ValueError(f"batched_nms: boxes {b.shape}, scores {s.shape}, groups {g.shape} disagree")
    if b.shape[0]:
        span = np.abs(b[:, :2]).max() + np.abs(b[:, 3:5]).max() + 2 * radius + 1.0
        b[:, 0] += (g - g.min()) * 2 * span
    if mode == "circle":
        keep = circle_nms(b, s, radius, pre_max=pre_max, post_max=post_max)
    elif mode == "rotated":
        keep = rotated_nms(b, s, iou_threshold, pre_max=pre_max, post_max=post_max)
    else:
        raise ValueError(f"batched_nms: mode must be 'circle' or 'rotated', got {mode!r}")
    return _wrap(keep, scores)
