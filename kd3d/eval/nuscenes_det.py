"""nuScenes detection metrics (protocol ``detection_cvpr_2019``): AP, TP errors, mAP, NDS.

Numerically identical to the devkit's ``DetectionEval`` (same greedy matching order, same
interpolation, same float operations), but vectorised: the greedy matching runs in "rounds"
(round r handles, in every sample at once, the r-th score-ranked prediction that has a GT of its
class within the threshold), so its cost is a few numpy calls per round instead of a Python loop
over every (prediction, GT) pair.

Matching facts this module relies on (see the devkit's ``accumulate``): predictions of a class
are visited by descending score, ties broken by the *later* row first; each takes the nearest
untaken GT of its class in its sample (xy centre distance, ties: the earlier GT), and is a true
positive if that distance is strictly below the threshold. A prediction only competes with
predictions of the same sample, which is what makes the rounds exact.

Entry points: :func:`evaluate_boxes` (already filtered :class:`~kd3d.eval.formats.NuscBoxes`,
the array API), :func:`evaluate_nuscenes` (a devkit ``NuScenes`` + split + submission, the
full pipeline incl. loading and filtering, see :mod:`kd3d.eval.nuscenes_gt`).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kd3d.eval.formats import NuscBoxes, quaternion_yaw
from kd3d.structures.classes import NUSC_CLASS_RANGE, NUSC_DET_CLASSES

log = logging.getLogger(__name__)

DETECTION_CVPR_2019 = {
    "class_range": dict(NUSC_CLASS_RANGE),
    "dist_fcn": "center_distance",
    "dist_ths": [0.5, 1.0, 2.0, 4.0],
    "dist_th_tp": 2.0,
    "min_recall": 0.1,
    "min_precision": 0.1,
    "max_boxes_per_sample": 500,
    "mean_ap_weight": 5,
}
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
# TP metrics that do not apply to a class (the devkit's rule): NaN in label_tp_errors, left out
# of the means and of the plots; their curves in metrics_details.json are the devkit's all-ones.
TP_METRICS_NOT_APPLICABLE = {"traffic_cone": ("attr_err", "vel_err", "orient_err"), "barrier": ("attr_err", "vel_err")}
_MD_KEYS = ("recall", "precision", "confidence", "trans_err", "vel_err", "scale_err", "orient_err", "attr_err")
NELEM = 101
_ERR_NAMES = {"trans_err": "mATE", "scale_err": "mASE", "orient_err": "mAOE", "vel_err": "mAVE", "attr_err": "mAAE"}


def no_predictions() -> dict[str, np.ndarray]:
    """Metric data of a class with no GT or no matches (the devkit's ``no_predictions``)."""
    md = {k: np.ones(NELEM) for k in _MD_KEYS}
    md["recall"] = np.linspace(0, 1, NELEM)
    md["precision"] = np.zeros(NELEM)
    md["confidence"] = np.zeros(NELEM)
    return md


def cummean(x: np.ndarray) -> np.ndarray:
    """NaN-aware running mean; all-NaN input gives ones (devkit semantics)."""
    if np.isnan(x).sum() == len(x):
        return np.ones(len(x))
    sums = np.nancumsum(x.astype(float))
    counts = np.cumsum(~np.isnan(x))
    return np.divide(sums, counts, out=np.zeros_like(sums), where=counts != 0)


def greedy_match(pred_sample, pred_xy, gt_sample, gt_xy, dist_ths) -> dict:
    """Greedy nearest-centre matching of score-ranked predictions, for several thresholds.

    ``pred_sample`` (P,) int, ``pred_xy`` (P, 2): predictions already in visiting order (rank 0
    first). ``gt_sample`` (G,), ``gt_xy`` (G, 2): GT of the same class (row order = tie order).
    Returns ``{th: matched (P,) int64}``: the matched GT row per prediction, or -1.
    """
    p_n, g_n = len(pred_sample), len(gt_sample)
    out = {th: np.full(p_n, -1, np.int64) for th in dist_ths}
    if p_n == 0 or g_n == 0:
        return out
    n_s = int(max(pred_sample.max(), gt_sample.max())) + 1
    gorder = np.argsort(gt_sample, kind="stable")
    counts = np.bincount(gt_sample, minlength=n_s)
    starts = np.cumsum(counts) - counts
    per_pred = counts[pred_sample]
    total = int(per_pred.sum())
    if total == 0:
        return out
    k = np.repeat(np.arange(p_n), per_pred)
    ramp = np.arange(total) - np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    g = gorder[np.repeat(starts[pred_sample], per_pred) + ramp]
    diff = pred_xy[k] - gt_xy[g]
    d = np.sqrt(diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1])
    keep = d < max(dist_ths)
    k, g, d, ramp = k[keep], g[keep], d[keep], ramp[keep]
    for th in dist_ths:
        sel = d < th
        out[th] = _rounds(k[sel], g[sel], d[sel], ramp[sel], pred_sample, p_n, g_n)
    return out


def _rounds(k, g, d, gpos, pred_sample, p_n, g_n) -> np.ndarray:
    matched = np.full(p_n, -1, np.int64)
    if len(k) == 0:
        return matched
    uk = np.unique(k)  # predictions with at least one candidate, in rank order
    s = pred_sample[uk]
    order = np.lexsort((uk, s))
    s_sorted = s[order]
    first = np.r_[True, s_sorted[1:] != s_sorted[:-1]]
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(uk)), 0))
    rnd_of = np.empty(p_n, np.int64)
    rnd_of[uk[order]] = np.arange(len(uk)) - group_start
    rnd = rnd_of[k]
    srt = np.lexsort((gpos, d, k, rnd))
    k, g, rnd = k[srt], g[srt], rnd[srt]
    bounds = np.searchsorted(rnd, np.arange(rnd[-1] + 2))
    taken = np.zeros(g_n, bool)
    for r in range(len(bounds) - 1):
        a, b = bounds[r], bounds[r + 1]
        kk, gg = k[a:b], g[a:b]
        free = np.flatnonzero(~taken[gg])
        if free.size == 0:
            continue
        kf = kk[free]
        head = free[np.r_[True, kf[1:] != kf[:-1]]]  # nearest untaken GT of each prediction
        matched[kk[head]] = gg[head]
        taken[gg[head]] = True
    return matched


def _angle_err(yaw_gt, yaw_pred, period):
    diff = np.mod(yaw_gt - yaw_pred + period / 2, period) - period / 2
    diff = np.where(diff > np.pi, diff - 2 * np.pi, diff)
    return np.abs(diff)


def accumulate_class(gt: NuscBoxes, pred: NuscBoxes, class_name: str, dist_ths) -> dict[float, dict]:
    """Metric data (101-point curves) of one class at each threshold, as the devkit's
    ``accumulate``. ``gt`` and ``pred`` are filtered and share ``sample_tokens``."""
    c = NUSC_DET_CLASSES.index(class_name)
    gm = gt.label == c
    npos = int(gm.sum())
    if npos == 0:
        return {th: no_predictions() for th in dist_ths}
    pm = np.flatnonzero(pred.label == c)
    score = pred.score[pm]
    order = pm[np.lexsort((-np.arange(len(pm)), -score))]  # score desc, later row first
    conf = pred.score[order]
    g_rows = np.flatnonzero(gm)
    matches = greedy_match(pred.sample_idx[order], pred.translation[order, :2],
                           gt.sample_idx[g_rows], gt.translation[g_rows, :2], dist_ths)
    period = np.pi if class_name == "barrier" else 2 * np.pi
    out = {}
    rec_interp = np.linspace(0, 1, NELEM)
    for th in dist_ths:
        m = matches[th]
        is_tp = m >= 0
        if not is_tp.any():
            out[th] = no_predictions()
            continue
        tp = np.cumsum(is_tp).astype(float)
        fp = np.cumsum(~is_tp).astype(float)
        prec = tp / (fp + tp)
        rec = tp / float(npos)
        md = {"recall": rec_interp,
              "precision": np.interp(rec_interp, rec, prec, right=0),
              "confidence": np.interp(rec_interp, rec, conf, right=0)}
        p_idx, g_idx = order[is_tp], g_rows[m[is_tp]]
        dxy = pred.translation[p_idx, :2] - gt.translation[g_idx, :2]
        dv = pred.velocity[p_idx] - gt.velocity[g_idx]
        sa, sr = gt.size[g_idx], pred.size[p_idx]
        inter = np.prod(np.minimum(sa, sr), axis=1)
        iou = inter / (np.prod(sa, axis=1) + np.prod(sr, axis=1) - inter)
        ga = gt.attr[g_idx]
        errs = {
            "trans_err": np.sqrt(dxy[:, 0] * dxy[:, 0] + dxy[:, 1] * dxy[:, 1]),
            "vel_err": np.sqrt(dv[:, 0] * dv[:, 0] + dv[:, 1] * dv[:, 1]),
            "scale_err": 1 - iou,
            "orient_err": _angle_err(quaternion_yaw(gt.rotation[g_idx]), quaternion_yaw(pred.rotation[p_idx]), period),
            "attr_err": np.where(ga < 0, np.nan, 1 - (ga == pred.attr[p_idx]).astype(float)),
        }
        mconf = conf[is_tp]
        for key, val in errs.items():
            tmp = cummean(val)
            md[key] = np.interp(md["confidence"][::-1], mconf[::-1], tmp[::-1])[::-1]
        out[th] = md
    return out


def calc_ap(md: dict, min_recall: float, min_precision: float) -> float:
    prec = np.copy(md["precision"])[round(100 * min_recall) + 1:]
    prec -= min_precision
    prec[prec < 0] = 0
    return float(np.mean(prec)) / (1.0 - min_precision)


def calc_tp(md: dict, min_recall: float, metric_name: str) -> float:
    first = round(100 * min_recall) + 1
    nz = np.nonzero(md["confidence"])[0]
    last = nz[-1] if len(nz) else 0
    if last < first:
        return 1.0
    return float(np.mean(md[metric_name][first:last + 1]))


@dataclass
class DetectionResult:
    """Metrics with the devkit's ``metrics_summary.json`` layout, plus per-class curves.

    ``summary``: keys label_aps, mean_dist_aps, mean_ap, label_tp_errors, tp_errors, tp_scores,
    nd_score, eval_time, cfg, meta. ``details``: ``"class:th"`` -> 101-point curves (lists), the
    devkit's ``metrics_details.json``.
    """

    summary: dict
    details: dict = field(repr=False)

    @property
    def nds(self) -> float:
        return self.summary["nd_score"]

    @property
    def mean_ap(self) -> float:
        return self.summary["mean_ap"]

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics_summary.json", "w") as f:
            json.dump(self.summary, f, indent=2)
        with open(out / "metrics_details.json", "w") as f:
            json.dump(self.details, f, indent=2)
        return out

    def format(self) -> str:
        """The devkit's printed summary."""
        s = self.summary
        lines = ["mAP: %.4f" % s["mean_ap"]]
        lines += ["%s: %.4f" % (_ERR_NAMES[k], v) for k, v in s["tp_errors"].items()]
        lines += ["NDS: %.4f" % s["nd_score"], "Eval time: %.1fs" % s["eval_time"], "", "Per-class results:"]
        lines.append("%-20s\t%-6s\t%-6s\t%-6s\t%-6s\t%-6s\t%-6s" % ("Object Class", "AP", "ATE", "ASE", "AOE", "AVE", "AAE"))
        for name, ap in s["mean_dist_aps"].items():
            t = s["label_tp_errors"][name]
            lines.append("%-20s\t%-6.3f\t%-6.3f\t%-6.3f\t%-6.3f\t%-6.3f\t%-6.3f" % (
                name, ap, t["trans_err"], t["scale_err"], t["orient_err"], t["vel_err"], t["attr_err"]))
        return "\n".join(lines)


def evaluate_boxes(gt: NuscBoxes, pred: NuscBoxes, config: dict | None = None, meta: dict | None = None,
                   progress: bool = False) -> DetectionResult:
    """Metrics of filtered GT and predictions (the array API).

    ``gt``/``pred``: :class:`NuscBoxes` after class-range / zero-point / bike-rack filtering
    (:func:`kd3d.eval.nuscenes_gt.filter_boxes`); predictions are remapped to ``gt``'s sample
    list by token. ``config`` defaults to :data:`DETECTION_CVPR_2019`.
    """
    cfg = dict(DETECTION_CVPR_2019 if config is None else config)
    start = time.time()
    if pred.sample_tokens != gt.sample_tokens:
        index = {t: i for i, t in enumerate(gt.sample_tokens)}
        unknown = [t for t in pred.sample_tokens if t not in index]
        if unknown:
            raise ValueError(f"predictions reference {len(unknown)} sample(s) without GT entry, e.g. {unknown[:3]}")
        remap = np.array([index[t] for t in pred.sample_tokens], dtype=np.int64)
        pred = NuscBoxes(gt.sample_tokens, remap[pred.sample_idx] if len(pred) else pred.sample_idx,
                         pred.translation, pred.size, pred.rotation, pred.velocity, pred.label, pred.score,
                         pred.attr, pred.num_pts)
    classes = list(cfg["class_range"].keys())
    ths = [float(t) for t in cfg["dist_ths"]]
    mds = {}
    iterator = classes
    if progress:
        from tqdm import tqdm

        iterator = tqdm(classes, desc="accumulate", leave=False)
    for name in iterator:
        for th, md in accumulate_class(gt, pred, name, ths).items():
            mds[(name, th)] = md
    label_aps, label_tp = {}, {}
    for name in classes:
        label_aps[name] = {th: calc_ap(mds[(name, th)], cfg["min_recall"], cfg["min_precision"]) for th in ths}
        label_tp[name] = {}
        for metric in TP_METRICS:
            if metric in TP_METRICS_NOT_APPLICABLE.get(name, ()):
                label_tp[name][metric] = np.nan
            else:
                label_tp[name][metric] = calc_tp(mds[(name, float(cfg["dist_th_tp"]))], cfg["min_recall"], metric)
    mean_dist_aps = {name: np.mean(list(d.values())) for name, d in label_aps.items()}
    mean_ap = float(np.mean(list(mean_dist_aps.values())))
    tp_errors = {m: float(np.nanmean([label_tp[c][m] for c in classes])) for m in TP_METRICS}
    tp_scores = {m: max(0.0, 1.0 - tp_errors[m]) for m in TP_METRICS}
    w = cfg["mean_ap_weight"]
    nds = float(w * mean_ap + np.sum(list(tp_scores.values()))) / float(w + len(tp_scores))
    summary = {
        "label_aps": label_aps, "mean_dist_aps": mean_dist_aps, "mean_ap": mean_ap, "label_tp_errors": label_tp,
        "tp_errors": tp_errors, "tp_scores": tp_scores, "nd_score": nds, "eval_time": time.time() - start,
        "cfg": cfg, "meta": dict(meta or {}),
    }
    details = {f"{name}:{th}": {k: np.asarray(v).tolist() for k, v in md.items()} for (name, th), md in mds.items()}
    return DetectionResult(summary, details)


def evaluate_nuscenes(nusc, split: str, results, out_dir=None, verbose: bool = True,
                      config: dict | None = None) -> DetectionResult:
    """The full devkit pipeline: load + validate the submission, load GT of ``split`` from the
    ``nuscenes.NuScenes`` tables, filter both, compute metrics, optionally write
    ``metrics_summary.json`` / ``metrics_details.json`` to ``out_dir`` and print the summary.

    ``results``: path of a submission JSON, the parsed dict, or :class:`NuscBoxes` (e.g. from
    :func:`kd3d.eval.formats.boxes_from_kd3d`; no file needed).
    """
    from kd3d.eval import nuscenes_gt
    from kd3d.eval.formats import check_sample_set, load_submission, to_submission

    cfg = dict(DETECTION_CVPR_2019 if config is None else config)
    if isinstance(results, NuscBoxes):  # validate exactly like a file
        results = to_submission(results)
    meta, pred = load_submission(results, cfg["max_boxes_per_sample"])
    tokens = nuscenes_gt.split_sample_tokens(nusc, split)
    source = results if isinstance(results, (str, Path)) else "submission"
    check_sample_set(pred.sample_tokens, tokens, str(source))
    scene = nuscenes_gt.load_scene_info(nusc, tokens, progress=verbose)
    gt = nuscenes_gt.load_gt(nusc, tokens, progress=verbose)
    pred = nuscenes_gt.filter_boxes(pred, scene, cfg["class_range"])
    gt = nuscenes_gt.filter_boxes(gt, scene, cfg["class_range"])
    result = evaluate_boxes(gt, pred, cfg, meta, progress=verbose)
    if out_dir is not None:
        result.write(out_dir)
    if verbose:
        log.info("%s", result.format())
    return result
