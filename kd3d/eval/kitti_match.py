"""KITTI object-devkit matching and precision curves, vectorised over frames and thresholds.

This reproduces ``cleanData`` / ``computeStatistics`` / ``getThresholds`` / ``eval_class`` of the
official ``evaluate_object.cpp`` for one (class, difficulty, metric):

* GT flags: 0 = valid, 1 = ignored (neighbour class Van/Person_sitting, or too hard for the
  difficulty: occlusion > max, truncation > max, or 2D height <= min), -1 = other class.
* detection flags: 1 when its 2D height < min height (any class), else 0 for the class, -1 for
  others.
* every frame walks its GT in file order; a GT takes, among the unassigned candidate detections
  (overlap strictly above the class threshold), the valid one with the largest overlap (first
  one on ties), else the first ignored (too small) one. Pass 1 (no FP counting) takes the
  highest-scoring candidate instead, and its true-positive scores give the 41 thresholds.
* FP: valid, unassigned detections scoring >= the threshold, minus those covered by a DontCare
  region (overlap relative to the detection's own area/volume above the threshold).

The GT loop is sequential inside a frame, so it runs in rounds: round r handles the r-th GT (that
has candidates) of every (frame, threshold) instance at once; instances are independent.
"""
from __future__ import annotations

import numpy as np

N_SAMPLE_PTS = 41


def _ranks(group: np.ndarray, order_key: np.ndarray) -> np.ndarray:
    """Rank of each element within its group, by ``order_key`` (both (E,))."""
    srt = np.lexsort((order_key, group))
    g = group[srt]
    first = np.r_[True, g[1:] != g[:-1]]
    start = np.maximum.accumulate(np.where(first, np.arange(len(g)), 0))
    ranks = np.empty(len(g), np.int64)
    ranks[srt] = np.arange(len(g)) - start
    return ranks


def _run_rounds(rnd, inst, slot, n_slots):
    """Generic greedy: entries already sorted by (round, instance, preference); per round and
    instance take the first entry whose ``slot`` is free, then occupy it. Returns (E,) bool."""
    taken = np.zeros(n_slots, bool)
    chosen = np.zeros(len(rnd), bool)
    if len(rnd) == 0:
        return chosen
    bounds = np.searchsorted(rnd, np.arange(rnd[-1] + 2))
    for r in range(len(bounds) - 1):
        a, b = bounds[r], bounds[r + 1]
        free = a + np.flatnonzero(~taken[slot[a:b]])
        if free.size == 0:
            continue
        ins = inst[free]
        head = free[np.r_[True, ins[1:] != ins[:-1]]]
        chosen[head] = True
        taken[slot[head]] = True
    return chosen


def get_thresholds(scores: np.ndarray, n_gt: int) -> np.ndarray:
    """The devkit's ``getThresholds``: scores at (about) 41 evenly spaced recall steps."""
    v = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    out = []
    current = 0.0
    n = len(v)
    for i in range(n):
        l_recall = (i + 1) / n_gt
        r_recall = (i + 2) / n_gt if i < n - 1 else l_recall
        if (r_recall - current) < (current - l_recall) and i < n - 1:
            continue
        out.append(v[i])
        current += 1.0 / (N_SAMPLE_PTS - 1.0)
    return np.array(out, dtype=np.float64)


def eval_curves(pairs: dict, gt_ign: np.ndarray, det_ign: np.ndarray, det_score: np.ndarray,
                gt_frame: np.ndarray, n_frames: int, dc_hit: np.ndarray, sim: np.ndarray | None = None) -> dict:
    """Precision (and AOS) at 41 recall samples for one class / difficulty / metric.

    ``pairs``: candidate (det, gt) pairs with overlap above the class threshold, keys ``det``,
    ``gt`` (row indices), ``ov`` (overlap); ``gt_ign`` (G,), ``det_ign`` (D,) flags as above;
    ``dc_hit`` (D,) bool: detection covered by a DontCare area; ``sim`` (E,) per pair orientation
    similarity ``(1 + cos(d_alpha)) / 2`` (for AOS) or None.
    Returns dict with ``precision`` (41,), ``aos`` (41,) or None, ``recall`` (T,), ``n_gt``,
    ``thresholds`` (T,).
    """
    n_gt = int((gt_ign == 0).sum())
    out = {"precision": np.zeros(N_SAMPLE_PTS), "aos": None if sim is None else np.zeros(N_SAMPLE_PTS),
           "recall": np.zeros(0), "n_gt": n_gt, "thresholds": np.zeros(0)}
    if n_gt == 0:
        out["precision"][:] = np.nan
        if sim is not None:
            out["aos"][:] = np.nan
        return out
    pj, pg, pov = pairs["det"], pairs["gt"], pairs["ov"]
    keep = (gt_ign[pg] != -1) & (det_ign[pj] != -1)
    pj, pg, pov = pj[keep], pg[keep], pov[keep]
    psim = sim[keep] if sim is not None else None
    frame = gt_frame[pg]
    rnd = np.zeros(0, np.int64)
    # GT round = rank of the GT among the GTs with candidates in its frame (file order)
    if len(pg):
        ug, inv = np.unique(pg, return_inverse=True)
        rnd = _ranks(gt_frame[ug], ug)[inv]
    n_det = len(det_ign)

    # pass 1: highest-scoring candidate per GT -> true-positive scores -> thresholds
    srt = np.lexsort((pj, -det_score[pj], frame, rnd))
    chosen = _run_rounds(rnd[srt], frame[srt], pj[srt], n_det)
    sel = srt[chosen]
    tp_mask = (gt_ign[pg[sel]] == 0) & (det_ign[pj[sel]] == 0)
    thresholds = get_thresholds(det_score[pj[sel][tp_mask]], n_gt)
    t_n = len(thresholds)
    out["thresholds"] = thresholds
    if t_n == 0:
        return out

    # pass 2: every threshold at once; instance = (threshold k, frame)
    kfirst = np.searchsorted(-thresholds, -det_score[pj], side="left")  # first k with t_k <= score
    cnt = t_n - kfirst
    e = np.repeat(np.arange(len(pj)), cnt)
    k = np.repeat(kfirst, cnt) + (np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    ej, eg = pj[e], pg[e]
    inst = k * n_frames + frame[e]
    pref_ov = np.where(det_ign[ej] == 0, -pov[e], 0.0)
    srt = np.lexsort((ej, pref_ov, det_ign[ej], inst, rnd[e]))
    slot = k[srt] * n_det + ej[srt]
    chosen = _run_rounds(rnd[e][srt], inst[srt], slot, t_n * n_det)
    sel = srt[chosen]
    ks, gs, js = k[sel], eg[sel], ej[sel]
    is_tp = (gt_ign[gs] == 0) & (det_ign[js] == 0)
    tp = np.bincount(ks[is_tp], minlength=t_n).astype(np.float64)
    matched_valid_gt = np.bincount(ks[gt_ign[gs] == 0], minlength=t_n)
    fn = n_gt - matched_valid_gt
    assigned = np.zeros(t_n * n_det, bool)
    assigned[ks * n_det + js] = True
    assigned = assigned.reshape(t_n, n_det)
    valid = np.flatnonzero(det_ign == 0)
    active = det_score[valid][None, :] >= thresholds[:, None]
    fp = (active & ~assigned[:, valid] & ~dc_hit[valid][None, :]).sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.nan_to_num(tp / (tp + fp))
        out["recall"] = tp / (tp + fn)
    out["precision"][:t_n] = prec
    out["precision"] = np.maximum.accumulate(out["precision"][::-1])[::-1]
    if sim is not None:
        simsum = np.bincount(ks[is_tp], weights=psim[e][sel][is_tp], minlength=t_n)
        with np.errstate(divide="ignore", invalid="ignore"):
            aos = np.nan_to_num(simsum / (tp + fp))
        out["aos"][:t_n] = aos
        out["aos"] = np.maximum.accumulate(out["aos"][::-1])[::-1]
    return out


def ap_r40(prec: np.ndarray) -> float:
    """Mean of samples 1..40 (the 2019+ official metric), in percent."""
    return float(np.sum(prec[1:N_SAMPLE_PTS]) / 40.0 * 100.0)


def ap_r11(prec: np.ndarray) -> float:
    """Mean of samples 0, 4, ..., 40 (the original 11-point metric), in percent."""
    return float(np.sum(prec[0:N_SAMPLE_PTS:4]) / 11.0 * 100.0)
