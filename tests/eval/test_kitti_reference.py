"""The vectorised KITTI matcher equals a plain per-frame, per-threshold transliteration of the
devkit's cleanData / computeStatistics / getThresholds / eval_class on generated folders."""
import numpy as np
import pytest

from kd3d.eval.kitti import (
    MAX_OCCLUSION, MAX_TRUNCATION, MIN_HEIGHT, MIN_OVERLAP, NEIGHBOUR, _overlaps, evaluate_labels, load_labels,
    read_split,
)
from kd3d.testing.kitti_cases import write_kitti_case

NO_DET = -10000000.0


def _clean(gt, det, gi, di, dci, cls, d):
    name = cls.lower()
    ign_gt = []
    for g in gi:
        t = gt.type[g]
        valid = 1 if t == name else (0 if NEIGHBOUR.get(name) == t else -1)
        h = gt.bbox[g, 3] - gt.bbox[g, 1]
        ignore = gt.occlusion[g] > MAX_OCCLUSION[d] or gt.truncation[g] > MAX_TRUNCATION[d] or h <= MIN_HEIGHT[d]
        ign_gt.append(0 if valid == 1 and not ignore else (1 if valid == 0 or (ignore and valid == 1) else -1))
    ign_det = []
    for j in di:
        h = abs(det.bbox[j, 1] - det.bbox[j, 3])
        ign_det.append(1 if h < MIN_HEIGHT[d] else (0 if det.type[j] == name else -1))
    return ign_gt, ign_det


def _stats(ov, dcov, det, gt, gi, di, ign_gt, ign_det, compute_fp, thresh, min_ov, aos):
    tp = fp = fn = 0
    v, delta = [], []
    assigned = [False] * len(di)
    low = [compute_fp and det.score[j] < thresh for j in di]
    for a, g in enumerate(gi):
        if ign_gt[a] == -1:
            continue
        det_idx, valid_det, max_ov, assigned_ign = -1, NO_DET, 0.0, False
        for b, j in enumerate(di):
            if ign_det[b] == -1 or assigned[b] or low[b]:
                continue
            o = ov[b, a]
            if not compute_fp and o > min_ov and det.score[j] > valid_det:
                det_idx, valid_det = b, det.score[j]
            elif compute_fp and o > min_ov and (o > max_ov or assigned_ign) and ign_det[b] == 0:
                max_ov, det_idx, valid_det, assigned_ign = o, b, 1, False
            elif compute_fp and o > min_ov and valid_det == NO_DET and ign_det[b] == 1:
                det_idx, valid_det, assigned_ign = b, 1, True
        if valid_det == NO_DET and ign_gt[a] == 0:
            fn += 1
        elif valid_det != NO_DET and (ign_gt[a] == 1 or ign_det[det_idx] == 1):
            assigned[det_idx] = True
        elif valid_det != NO_DET:
            tp += 1
            v.append(det.score[di[det_idx]])
            delta.append(gt.alpha[g] - det.alpha[di[det_idx]])
            assigned[det_idx] = True
    sim = 0.0
    if compute_fp:
        for b in range(len(di)):
            if not (assigned[b] or ign_det[b] in (-1, 1) or low[b]):
                fp += 1
        nstuff = 0
        for c in range(dcov.shape[1]):
            for b in range(len(di)):
                if assigned[b] or ign_det[b] in (-1, 1) or low[b]:
                    continue
                if dcov[b, c] > min_ov:
                    assigned[b] = True
                    nstuff += 1
        fp -= nstuff
        sim = sum((1.0 + np.cos(x)) / 2.0 for x in delta)
    return tp, fp, fn, v, sim


def _thresholds(v, n_gt):
    v = sorted(v, reverse=True)
    out, cur = [], 0.0
    for i in range(len(v)):
        lr = (i + 1) / n_gt
        rr = (i + 2) / n_gt if i < len(v) - 1 else lr
        if (rr - cur) < (cur - lr) and i < len(v) - 1:
            continue
        out.append(v[i])
        cur += 1.0 / 40.0
    return out


def reference(gt, det, cls, d, metric):
    frames = []
    for f in range(len(gt.frame_ids)):
        gi = np.flatnonzero(gt.frame == f)
        gi = gi[gt.type[gi] != "dontcare"]
        dci = np.flatnonzero((gt.frame == f) & (gt.type == "dontcare"))
        di = np.flatnonzero(det.frame == f)
        ii, jj = np.meshgrid(np.arange(len(di)), np.arange(len(gi)), indexing="ij")
        ov = _overlaps(det, di[ii.ravel()], gt, gi[jj.ravel()], own=False)[metric].reshape(len(di), len(gi))
        ii, kk = np.meshgrid(np.arange(len(di)), np.arange(len(dci)), indexing="ij")
        dcov = _overlaps(det, di[ii.ravel()], gt, dci[kk.ravel()], own=True)[metric].reshape(len(di), len(dci))
        frames.append((gi, di, ov, dcov, *_clean(gt, det, gi, di, dci, cls, d)))
    n_gt = sum(x.count(0) for *_, x, _ in frames)
    if n_gt == 0:
        return None, None
    min_ov = MIN_OVERLAP[cls]
    v = []
    for gi, di, ov, dcov, ign_gt, ign_det in frames:
        v += _stats(ov, dcov, det, gt, gi, di, ign_gt, ign_det, False, 0.0, min_ov, False)[3]
    ths = _thresholds(v, n_gt)
    prec, aos = np.zeros(41), np.zeros(41)
    for k, t in enumerate(ths):
        tp = fp = 0
        sim = 0.0
        for gi, di, ov, dcov, ign_gt, ign_det in frames:
            a, b, _, _, s = _stats(ov, dcov, det, gt, gi, di, ign_gt, ign_det, True, t, min_ov, True)
            tp, fp, sim = tp + a, fp + b, sim + s
        prec[k] = tp / (tp + fp)
        aos[k] = sim / (tp + fp)
    for i in range(41):
        prec[i], aos[i] = prec[i:].max(), aos[i:].max()
    return prec, aos


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_equals_sequential_devkit_logic(tmp_path, seed):
    g, r, s = write_kitti_case(tmp_path, 25, seed=seed, objects=6, p_duplicate=0.5)
    ids = read_split(s)
    gt, det = load_labels(g, ids, False), load_labels(r, ids, True)
    res = evaluate_labels(gt, det)
    checked = 0
    for cls in ("Car", "Pedestrian", "Cyclist"):
        for d, dname in enumerate(("easy", "moderate", "hard")):
            for metric in ("bbox", "bev", "3d"):
                prec, aos = reference(gt, det, cls, d, metric)
                ours = np.array(res.curves[cls][metric][dname])
                if prec is None:
                    assert np.isnan(ours).all()
                    continue
                np.testing.assert_allclose(ours, prec, atol=1e-12, err_msg=f"{cls} {dname} {metric}")
                if metric == "bbox":
                    np.testing.assert_allclose(res.curves[cls]["aos"][dname], aos, atol=1e-12)
                checked += prec.max() > 0
    assert checked >= 10
