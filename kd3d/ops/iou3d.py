"""Exact rotated IoU of 3D boxes in double precision (numpy, vectorised over all pairs).

Boxes use kd3d's :class:`~kd3d.structures.boxes.Boxes3D` layout: (N, >=7) ``x y z l w h yaw``
in the LiDAR frame (centre, ``l`` along the heading, yaw about +z). The bird's-eye-view (BEV)
footprint of a box is the rotated rectangle ``(x, y, l, w, yaw)`` in the xy plane; its vertical
extent is ``[z - h/2, z + h/2]``.

Intersection areas of two rotated rectangles are computed exactly (up to float64 rounding) by
Sutherland-Hodgman clipping of one rectangle by the four edge half-planes of the other, for all
candidate pairs at once. Pairs whose circumscribed circles do not overlap are skipped (their
intersection is 0), so sparse scenes cost little. Identical boxes give IoU 1 (to ~1e-15).

Public functions (inputs may be numpy arrays, torch tensors or ``Boxes3D``; a torch input gives
a torch output with the input's floating dtype and device, otherwise float64 numpy):

* :func:`bev_iou` (N, M), :func:`iou3d` (N, M): pairwise.
* :func:`bev_iou_aligned` (N,), :func:`iou3d_aligned` (N,): row i of ``a`` with row i of ``b``.
* :func:`rect_intersection` (N, M) / :func:`rect_intersection_aligned` (N,): raw overlap area
  of rotated rectangles ``(cx, cy, l, w, yaw)``; the building block for other frames (KITTI's
  camera-frame ground plane uses it through :mod:`kd3d.eval.kitti`).
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "bev_iou", "iou3d", "bev_iou_aligned", "iou3d_aligned",
    "rect_corners", "rect_intersection", "rect_intersection_aligned",
]

# Pairs are clipped in chunks of this many to bound memory (~ chunk * 12 * 2 * 8 bytes * few).
_CHUNK = 65536
# Vertices within this relative distance outside a clip edge count as inside, so that vertices on
# a shared edge are classified consistently (keeps the clipped polygon convex and small).
_REL_TOL = 1e-14


def _to_numpy(boxes, name: str, min_cols: int) -> tuple[np.ndarray, object]:
    """Return (float64 (N, C) array, torch reference tensor or None)."""
    ref = None
    data = getattr(boxes, "data", boxes)  # Boxes3D
    if type(data).__module__.startswith("torch"):
        ref = data
        data = data.detach().cpu().double().numpy()
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, min_cols)
    if arr.ndim != 2 or arr.shape[1] < min_cols:
        raise ValueError(f"{name}: expected an (N, >={min_cols}) box array, got shape {arr.shape}")
    return arr, ref


def _wrap(out: np.ndarray, ref_a, ref_b):
    ref = ref_a if ref_a is not None else ref_b
    if ref is None:
        return out
    import torch

    dtype = ref.dtype if ref.is_floating_point() else torch.float64
    return torch.from_numpy(out).to(device=ref.device, dtype=dtype)


def rect_corners(rects: np.ndarray) -> np.ndarray:
    """(N, 5) rectangles ``cx cy l w yaw`` -> (N, 4, 2) corners, counter-clockwise."""
    r = np.asarray(rects, dtype=np.float64)
    c, s = np.cos(r[:, 4]), np.sin(r[:, 4])
    hl, hw = r[:, 2] / 2, r[:, 3] / 2
    lx = np.stack([hl, -hl, -hl, hl], axis=1)
    ly = np.stack([hw, hw, -hw, -hw], axis=1)
    x = r[:, 0:1] + lx * c[:, None] - ly * s[:, None]
    y = r[:, 1:2] + lx * s[:, None] + ly * c[:, None]
    return np.stack([x, y], axis=-1)


def _clip_area(subj: np.ndarray, clip: np.ndarray, tol: np.ndarray) -> np.ndarray:
    """Area of subj ∩ clip for K pairs of convex CCW quadrilaterals (K, 4, 2) -> (K,).

    Sutherland-Hodgman with fixed-size padded polygons: every step keeps the first ``cnt``
    entries valid; a convex n-gon clipped by a half-plane has at most n + 1 vertices (n + 2 is
    kept for safety against rounding).
    """
    k = subj.shape[0]
    poly = subj
    cnt = np.full(k, 4, dtype=np.int64)
    rows = np.arange(k)[:, None]
    for e in range(4):
        e0 = clip[:, e]
        d = clip[:, (e + 1) % 4] - e0
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-300)
        n = poly.shape[1]
        idx = np.arange(n)[None]
        valid = idx < cnt[:, None]
        nxt = np.where(idx + 1 < cnt[:, None], idx + 1, 0)
        # signed distance to the edge line, > 0 inside for CCW polygons; a vertex within ``tol``
        # outside still counts as inside (consistent classification of shared edges)
        rel = poly - e0[:, None]
        sd = d[:, None, 0] * rel[..., 1] - d[:, None, 1] * rel[..., 0]
        sq = sd[rows, nxt]
        q = poly[rows, nxt]
        pin = sd >= -tol[:, None]
        cross = pin != (sq >= -tol[:, None])
        t = sd / np.where(cross, sd - sq, 1.0)
        xpt = poly + t[..., None] * (q - poly)
        out = np.stack([poly, xpt], axis=2).reshape(k, 2 * n, 2)
        keep = np.stack([pin & valid, cross & valid], axis=2).reshape(k, 2 * n)
        cnt = keep.sum(axis=1)
        m = min(2 * n, n + 2)
        order = np.argsort(~keep, axis=1, kind="stable")[:, :m]
        poly = out[rows, order]
        cnt = np.minimum(cnt, m)
    n = poly.shape[1]
    idx = np.arange(n)[None]
    valid = idx < cnt[:, None]
    nxt = np.where(idx + 1 < cnt[:, None], idx + 1, 0)
    q = poly[rows, nxt]
    # shoelace about the first vertex (better conditioned than about the origin)
    o = poly[:, :1]
    a, b = poly - o, q - o
    crs = a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]
    area = 0.5 * np.where(valid, crs, 0.0).sum(axis=1)
    return np.maximum(area, 0.0)


def _pair_areas(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """Intersection areas of aligned rectangle pairs (K, 5), (K, 5) -> (K,)."""
    k = ra.shape[0]
    out = np.zeros(k)
    if k == 0:
        return out
    ca, cb = rect_corners(ra), rect_corners(rb)
    scale = np.abs(np.concatenate([ra[:, :4], rb[:, :4]], axis=1)).max(axis=1)
    tol = _REL_TOL * (1.0 + scale)
    for s in range(0, k, _CHUNK):
        sl = slice(s, s + _CHUNK)
        out[sl] = _clip_area(ca[sl], cb[sl], tol[sl])
    degenerate = (ra[:, 2] <= 0) | (ra[:, 3] <= 0) | (rb[:, 2] <= 0) | (rb[:, 3] <= 0)
    out[degenerate] = 0.0
    return out


def _candidates(ra: np.ndarray, rb: np.ndarray) -> np.ndarray:
    """(N, M) bool: circumscribed circles overlap (necessary for a nonzero intersection)."""
    rad_a = 0.5 * np.hypot(ra[:, 2], ra[:, 3])
    rad_b = 0.5 * np.hypot(rb[:, 2], rb[:, 3])
    dx = ra[:, None, 0] - rb[None, :, 0]
    dy = ra[:, None, 1] - rb[None, :, 1]
    reach = rad_a[:, None] + rad_b[None, :]
    return dx * dx + dy * dy <= reach * reach * (1 + 1e-9) + 1e-12


def rect_intersection(rects_a, rects_b) -> np.ndarray:
    """Pairwise overlap areas of rotated rectangles.

    ``rects_a`` (N, 5), ``rects_b`` (M, 5): ``cx cy l w yaw`` in any right-handed 2D frame.
    Returns (N, M) float64 areas.
    """
    ra, _ = _to_numpy(rects_a, "rects_a", 5)
    rb, _ = _to_numpy(rects_b, "rects_b", 5)
    out = np.zeros((ra.shape[0], rb.shape[0]))
    if out.size == 0:
        return out
    ii, jj = np.nonzero(_candidates(ra, rb))
    out[ii, jj] = _pair_areas(ra[ii, :5], rb[jj, :5])
    return out


def rect_intersection_aligned(rects_a, rects_b) -> np.ndarray:
    """Overlap area of rectangle i of ``rects_a`` with rectangle i of ``rects_b``: (N,)."""
    ra, _ = _to_numpy(rects_a, "rects_a", 5)
    rb, _ = _to_numpy(rects_b, "rects_b", 5)
    if ra.shape[0] != rb.shape[0]:
        raise ValueError(f"aligned IoU needs equal counts, got {ra.shape[0]} and {rb.shape[0]}")
    return _pair_areas(ra[:, :5], rb[:, :5])


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num)
    ok = den > 0
    out[ok] = num[ok] / den[ok]
    return np.clip(out, 0.0, 1.0)


def _bev_rects(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, [0, 1, 3, 4, 6]]


def _z_overlap(a: np.ndarray, b: np.ndarray, aligned: bool) -> np.ndarray:
    a_lo, a_hi = a[:, 2] - a[:, 5] / 2, a[:, 2] + a[:, 5] / 2
    b_lo, b_hi = b[:, 2] - b[:, 5] / 2, b[:, 2] + b[:, 5] / 2
    if aligned:
        return np.maximum(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0.0)
    return np.maximum(np.minimum(a_hi[:, None], b_hi[None]) - np.maximum(a_lo[:, None], b_lo[None]), 0.0)


def bev_iou(a, b):
    """Pairwise rotated BEV IoU.

    ``a`` (N, >=7), ``b`` (M, >=7): ``x y z l w h yaw ...`` (Boxes3D layout, LiDAR frame).
    Returns (N, M): intersection area of the xy footprints / union area (0 where the union is 0).
    """
    na, ta = _to_numpy(a, "a", 7)
    nb, tb = _to_numpy(b, "b", 7)
    inter = rect_intersection(_bev_rects(na), _bev_rects(nb))
    area_a = na[:, 3] * na[:, 4]
    area_b = nb[:, 3] * nb[:, 4]
    return _wrap(_safe_div(inter, area_a[:, None] + area_b[None] - inter), ta, tb)


def iou3d(a, b):
    """Pairwise rotated 3D IoU: BEV intersection area x z-overlap / union volume.

    ``a`` (N, >=7), ``b`` (M, >=7) in the Boxes3D layout (centre ``z``, height ``h``).
    Returns (N, M).
    """
    na, ta = _to_numpy(a, "a", 7)
    nb, tb = _to_numpy(b, "b", 7)
    out = np.zeros((na.shape[0], nb.shape[0]))
    if out.size:
        zo = _z_overlap(na, nb, aligned=False)
        cand = _candidates(_bev_rects(na), _bev_rects(nb)) & (zo > 0)
        ii, jj = np.nonzero(cand)
        inter = _pair_areas(_bev_rects(na)[ii], _bev_rects(nb)[jj]) * zo[ii, jj]
        vol_a = na[:, 3] * na[:, 4] * na[:, 5]
        vol_b = nb[:, 3] * nb[:, 4] * nb[:, 5]
        out[ii, jj] = _safe_div(inter, vol_a[ii] + vol_b[jj] - inter)
    return _wrap(out, ta, tb)


def bev_iou_aligned(a, b):
    """Rotated BEV IoU of box i of ``a`` with box i of ``b``: (N, >=7) x (N, >=7) -> (N,)."""
    na, ta = _to_numpy(a, "a", 7)
    nb, tb = _to_numpy(b, "b", 7)
    inter = rect_intersection_aligned(_bev_rects(na), _bev_rects(nb))
    union = na[:, 3] * na[:, 4] + nb[:, 3] * nb[:, 4] - inter
    return _wrap(_safe_div(inter, union), ta, tb)


def iou3d_aligned(a, b):
    """Rotated 3D IoU of box i of ``a`` with box i of ``b``: (N, >=7) x (N, >=7) -> (N,)."""
    na, ta = _to_numpy(a, "a", 7)
    nb, tb = _to_numpy(b, "b", 7)
    inter = rect_intersection_aligned(_bev_rects(na), _bev_rects(nb)) * _z_overlap(na, nb, aligned=True)
    union = na[:, 3] * na[:, 4] * na[:, 5] + nb[:, 3] * nb[:, 4] * nb[:, 5] - inter
    return _wrap(_safe_div(inter, union), ta, tb)
