"""Evaluation plots from the nuScenes detection output (matplotlib, Agg canvas, no display).

Reads the devkit's files as written by ``DetectionEval`` (and kd3d's ``kd3d.eval.nuscenes_det``,
which writes the same keys):

* ``metrics_details.json``: ``{"<class>:<dist>": {"recall", "precision", "confidence",
  "trans_err", "vel_err", "scale_err", "orient_err", "attr_err"}}``, each a list of 101
  values sampled at recall ``linspace(0, 1, 101)`` (``DetectionMetricData.serialize``);
* ``metrics_summary.json``: ``label_aps[class][dist]``, ``label_tp_errors[class][metric]``,
  ``mean_ap``, ``nd_score``, ``tp_errors``, ...

The figures mirror the devkit's own rendering rules: TP errors are shown from the 11th recall
point (``min_recall`` 0.1) up to the last point with nonzero confidence.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

DETAIL_KEYS = ("recall", "precision", "confidence", "trans_err", "vel_err", "scale_err", "orient_err", "attr_err")
TP_METRICS = ("trans_err", "scale_err", "orient_err", "vel_err", "attr_err")
TP_UNITS = {"trans_err": "m", "scale_err": "1-IoU", "orient_err": "rad", "vel_err": "m/s", "attr_err": "1-acc"}


def load_metric_details(path) -> dict[tuple[str, float], dict[str, np.ndarray]]:
    """``metrics_details.json`` (or a folder holding it) -> ``{(class, dist): {key: (101,) array}}``."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics_details.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics_details.json (write it with `kd3d eval` or the devkit)")
    raw = json.loads(path.read_text())
    out = {}
    for key, md in raw.items():
        name, sep, dist = key.rpartition(":")
        if not sep:
            raise ValueError(f"{path}: key {key!r} is not '<class>:<distance>'")
        missing = [k for k in DETAIL_KEYS if k not in md]
        if missing:
            raise ValueError(f"{path}: entry {key!r} lacks {missing} (expected DetectionMetricData fields)")
        arrs = {k: np.asarray(md[k], dtype=np.float64) for k in DETAIL_KEYS}
        n = {a.shape for a in arrs.values()}
        if len(n) != 1:
            raise ValueError(f"{path}: entry {key!r} has arrays of different lengths {sorted(n)}")
        out[(name, float(dist))] = arrs
    return out


def load_metrics_summary(path) -> dict:
    """``metrics_summary.json`` (or its folder) -> dict (devkit keys); {} when absent."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics_summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def max_recall_index(confidence: np.ndarray) -> int:
    """Index of the last recall point with nonzero confidence (0 when none), as in the devkit."""
    nz = np.flatnonzero(np.asarray(confidence) > 0)
    return int(nz[-1]) if len(nz) else 0


def _figure(n: int, ncols: int = 5, size: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig = Figure(figsize=(size * ncols, size * nrows), dpi=80)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(nrows, ncols, i + 1) for i in range(n)]
    return fig, axes


def _classes(details) -> list[str]:
    seen = []
    for name, _ in details:
        if name not in seen:
            seen.append(name)
    return seen


def _no_tp_reason(cls: str, num_gt: dict | None, num_pred: dict | None, max_dist: float) -> str:
    """Why a class's PR panel is empty (no distance reached a true positive)."""
    if num_gt is not None and num_gt.get(cls) == 0:
        return "no GT of this class"
    if num_pred is not None and num_pred.get(cls) == 0:
        return "no predictions of this class"
    if num_gt is not None and num_pred is not None:
        return f"no prediction within {max_dist:g} m of a GT box"
    return f"no true positive:\nno GT of this class, no predictions,\nor none within {max_dist:g} m of a GT box"


def plot_pr_curves(details, summary: dict | None = None, classes=None, min_precision: float = 0.1,
                   min_recall: float = 0.1, *, num_gt: dict | None = None, num_pred: dict | None = None):
    """One subplot per class: precision vs recall for every matching distance, up to the
    maximal recall reached; AP per distance in the legend when ``summary`` has ``label_aps``.
    Dashed grey lines mark ``min_precision`` and ``min_recall`` (the devkit's AP clipping).
    A distance without any true positive is listed as such in the legend; a class with none at
    any distance gets an empty panel that says why (``num_gt`` / ``num_pred``: per-class counts,
    when known, name the reason; the metric files alone cannot tell no GT from no match).
    Returns a matplotlib Figure (Agg canvas)."""
    classes = list(classes or _classes(details))
    fig, axes = _figure(len(classes))
    aps = (summary or {}).get("label_aps", {})
    for ax, cls in zip(axes, classes):
        dists = sorted(d for c, d in details if c == cls)
        drawn = 0
        for d in dists:
            md = details[(cls, d)]
            if not (np.asarray(md["confidence"]) > 0).any():
                ax.plot([], [], " ", label=f"{d:g} m: no true positive")
                continue
            k = max_recall_index(md["confidence"])
            ap = aps.get(cls, {}).get(str(d), aps.get(cls, {}).get(f"{d:g}"))
            label = f"{d:g} m" + (f" AP {ap:.3f}" if ap is not None else "")
            ax.plot(md["recall"][: k + 1], md["precision"][: k + 1], label=label, linewidth=1.5)
            drawn += 1
        ax.axhline(min_precision, color="0.6", linestyle="--", linewidth=0.8)
        ax.axvline(min_recall, color="0.6", linestyle="--", linewidth=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=cls)
        if drawn:
            ax.legend(fontsize=7, loc="lower left")
        else:
            ax.text(0.5, 0.5, _no_tp_reason(cls, num_gt, num_pred, max(dists, default=0.0)), ha="center",
                    va="center", fontsize=8, transform=ax.transAxes)
    title = "precision / recall"
    if summary and "mean_ap" in summary:
        title += f"   mAP {summary['mean_ap']:.4f}" + (f"   NDS {summary['nd_score']:.4f}" if "nd_score" in summary else "")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def tp_metric_applies(cls: str, metric: str, summary: dict | None = None) -> bool:
    """False for a TP metric the evaluation leaves out for ``cls``: NaN (or null) in the summary's
    ``label_tp_errors`` when it has the entry, else the devkit's rule (traffic cones: attribute,
    velocity, orientation; barriers: attribute, velocity). The devkit stores such curves as all
    ones, which would read as an error of 1 everywhere."""
    entry = (summary or {}).get("label_tp_errors", {}).get(cls, {})
    if metric in entry:
        value = entry[metric]
        return value is not None and bool(np.isfinite(value))
    from kd3d.eval.nuscenes_det import TP_METRICS_NOT_APPLICABLE

    return metric not in TP_METRICS_NOT_APPLICABLE.get(cls, ())


def plot_tp_curves(details, summary: dict | None = None, classes=None, dist_th: float = 2.0, min_recall: float = 0.1):
    """One subplot per class: each TP error vs recall at matching distance ``dist_th``, from
    ``min_recall`` to the maximal recall reached (the devkit's averaging window). The class's
    mean TP error (``label_tp_errors``) is in the legend when available. Metrics that do not
    apply to the class (:func:`tp_metric_applies`, e.g. velocity for traffic cones) and NaN
    errors are left out and named in the panel; the y axis reaches the largest error drawn (at
    least 1), so large errors (orientation up to pi, velocity in m/s) stay visible.
    Returns a matplotlib Figure."""
    classes = [c for c in (classes or _classes(details)) if (c, float(dist_th)) in details]
    if not classes:
        raise ValueError(f"plot_tp_curves: no class has data at distance {dist_th} m")
    fig, axes = _figure(len(classes))
    tps = (summary or {}).get("label_tp_errors", {})
    first = int(round(100 * min_recall)) + 1
    for ax, cls in zip(axes, classes):
        md = details[(cls, float(dist_th))]
        k = max_recall_index(md["confidence"])
        rec = md["recall"][first: k + 1]
        top, left_out = 1.0, []
        for metric in TP_METRICS:
            if not tp_metric_applies(cls, metric, summary):
                left_out.append(metric)
                continue
            err = md[metric][first: k + 1]
            if not len(err) or not np.isfinite(err).any():
                continue
            mean = tps.get(cls, {}).get(metric)
            label = f"{metric} [{TP_UNITS[metric]}]" + (f" {mean:.3f}" if mean is not None and np.isfinite(mean) else "")
            ax.plot(rec, err, label=label, linewidth=1.5)
            top = max(top, float(np.nanmax(err)))
        ax.set(xlim=(0, 1), ylim=(0, 1.05 * top), xlabel="recall", ylabel="error", title=f"{cls} @ {dist_th:g} m")
        if ax.get_lines():
            ax.legend(fontsize=7, loc="upper left")
        else:
            ax.text(0.5, 0.5, "no true positives\nbeyond min recall", ha="center", va="center", transform=ax.transAxes)
        if left_out:
            ax.text(0.98, 0.02, "n/a: " + ", ".join(left_out), ha="right", va="bottom", fontsize=6, color="0.4",
                    transform=ax.transAxes)
    fig.suptitle("TP errors vs recall")
    fig.tight_layout()
    return fig


def plot_summary(summary: dict):
    """Bars of per-class mean AP (over distances) and mean TP errors from ``metrics_summary.json``."""
    aps = summary.get("mean_dist_aps") or {c: float(np.mean(list(v.values()))) for c, v in summary.get("label_aps", {}).items()}
    if not aps:
        raise ValueError("plot_summary: metrics summary has neither 'mean_dist_aps' nor 'label_aps'")
    fig, (ax1, ax2) = _figure(2, ncols=2, size=5.0)
    names = list(aps)
    ax1.barh(names, [aps[n] for n in names], color="tab:blue")
    ax1.set(xlim=(0, 1), xlabel="AP (mean over distances)", title=f"mAP {summary.get('mean_ap', float('nan')):.4f}")
    ax1.invert_yaxis()
    tp = summary.get("tp_errors", {})
    ax2.barh(list(tp), [v if v is not None and np.isfinite(v) else 0.0 for v in tp.values()], color="tab:red")
    ax2.set(xlabel="mean TP error", title=f"NDS {summary.get('nd_score', float('nan')):.4f}")
    ax2.invert_yaxis()
    fig.tight_layout()
    return fig


def save_figure(fig, path) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return str(path)


def render_eval_plots(metrics_dir, out_dir, dist_th: float = 2.0) -> list[str]:
    """Write ``pr_curves.png``, ``tp_curves.png`` and (with a summary) ``summary.png`` for the
    evaluation output in ``metrics_dir``; returns the written paths."""
    details = load_metric_details(metrics_dir)
    summary = load_metrics_summary(metrics_dir)
    out = Path(out_dir)
    files = [save_figure(plot_pr_curves(details, summary), out / "pr_curves.png"),
             save_figure(plot_tp_curves(details, summary, dist_th=dist_th), out / "tp_curves.png")]
    if summary:
        files.append(save_figure(plot_summary(summary), out / "summary.png"))
    return files
