"""Evaluation plots read the devkit's metrics_details.json and draw the curves where they are."""
import json

import numpy as np
import pytest
from nuscenes.eval.detection.data_classes import DetectionMetricData, DetectionMetricDataList

from kd3d.vis.plots import load_metric_details, load_metrics_summary, plot_pr_curves, plot_tp_curves, render_eval_plots


def _md(max_rec_idx: int, p0: float):
    rec = np.linspace(0, 1, 101)
    prec = np.clip(p0 - 0.5 * rec, 0, 1)
    conf = np.zeros(101)
    conf[: max_rec_idx + 1] = np.linspace(0.9, 0.1, max_rec_idx + 1)
    err = np.linspace(0.2, 0.8, 101)
    return DetectionMetricData(recall=rec, precision=prec, confidence=conf, trans_err=err, vel_err=err * 0.5,
                               scale_err=err * 0.3, orient_err=err * 0.2, attr_err=err * 0.1)


@pytest.fixture
def metrics_dir(tmp_path):
    mdl = DetectionMetricDataList()
    for cls in ("car", "pedestrian"):
        for d in (0.5, 1.0, 2.0, 4.0):
            mdl.set(cls, d, _md(60, 0.6 + 0.1 * d))
    (tmp_path / "metrics_details.json").write_text(json.dumps(mdl.serialize()))
    summary = {"mean_ap": 0.4, "nd_score": 0.5, "label_aps": {"car": {"0.5": 0.1, "1.0": 0.2, "2.0": 0.3, "4.0": 0.4}},
               "mean_dist_aps": {"car": 0.25, "pedestrian": 0.3},
               "tp_errors": {"trans_err": 0.3, "scale_err": 0.2, "orient_err": 0.4, "vel_err": 0.5, "attr_err": 0.1},
               "label_tp_errors": {"car": {"trans_err": 0.31}}}
    (tmp_path / "metrics_summary.json").write_text(json.dumps(summary))
    return tmp_path


def _pixel(fig, ax, x, y):
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    px, py = ax.transData.transform((x, y))
    return img, int(round(px)), int(round(img.shape[0] - py))


def _has_color(img, u, v, color, r=2, tol=40):
    patch = img[v - r:v + r + 1, u - r:u + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.asarray(color)).max(1) <= tol).any())


def test_load_devkit_details(metrics_dir):
    d = load_metric_details(metrics_dir)
    assert set(d) == {(c, t) for c in ("car", "pedestrian") for t in (0.5, 1.0, 2.0, 4.0)}
    assert d[("car", 2.0)]["precision"].shape == (101,)


def test_pr_curve_drawn_where_the_data_is(metrics_dir):
    details = load_metric_details(metrics_dir)
    fig = plot_pr_curves(details, load_metrics_summary(metrics_dir), classes=["car"])
    ax = fig.axes[0]
    blue = (31, 119, 180)  # first line colour (0.5 m): precision = 0.65 - 0.5 recall
    img, u, v = _pixel(fig, ax, 0.3, 0.65 - 0.15)
    assert _has_color(img, u, v, blue)
    img, u, v = _pixel(fig, ax, 0.3, 0.9)  # nothing blue far from the curve
    assert not _has_color(img, u, v, blue)
    img, u, v = _pixel(fig, ax, 0.8, 0.65 - 0.4)  # beyond the maximal recall (0.6): not drawn
    assert not _has_color(img, u, v, blue)
    assert "AP 0.100" in [t.get_text() for t in ax.get_legend().get_texts()][0]


def test_tp_curve_window(metrics_dir):
    details = load_metric_details(metrics_dir)
    fig = plot_tp_curves(details, classes=["car"], dist_th=2.0)
    ax = fig.axes[0]
    blue = (31, 119, 180)  # trans_err = 0.2 + 0.6 recall, shown for recall in [0.11, 0.6]
    img, u, v = _pixel(fig, ax, 0.4, 0.2 + 0.6 * 0.4)
    assert _has_color(img, u, v, blue)
    img, u, v = _pixel(fig, ax, 0.05, 0.2 + 0.6 * 0.05)
    assert not _has_color(img, u, v, blue)


def test_render_eval_plots_files(metrics_dir, tmp_path):
    files = render_eval_plots(metrics_dir, tmp_path / "plots")
    assert [f.rsplit("/", 1)[1] for f in files] == ["pr_curves.png", "tp_curves.png", "summary.png"]


def test_bad_details(tmp_path):
    (tmp_path / "metrics_details.json").write_text(json.dumps({"car:2.0": {"recall": [0.0]}}))
    with pytest.raises(ValueError, match="lacks"):
        load_metric_details(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_metric_details(tmp_path / "nope")


def test_plots_from_kd3d_evaluator_output(tmp_path):
    """kd3d.eval.nuscenes_det writes the devkit layout; a perfect detector draws precision 1 up to recall 1."""
    from kd3d.eval.formats import NuscBoxes
    from kd3d.eval.nuscenes_det import evaluate_boxes

    n = 6
    xy = np.stack([np.arange(n) * 6.0 + 5, np.zeros(n)], 1)
    common = dict(translation=np.column_stack([xy, np.zeros(n)]), size=np.tile([1.9, 4.5, 1.6], (n, 1)),
                  rotation=np.tile([1.0, 0, 0, 0], (n, 1)), velocity=np.zeros((n, 2)), label=np.zeros(n),
                  attr=np.full(n, 2))
    gt = NuscBoxes(["s0"], np.zeros(n), score=np.full(n, -1.0), num_pts=np.full(n, 10), **common)
    pred = NuscBoxes(["s0"], np.zeros(n), score=np.linspace(0.9, 0.4, n), **common)
    evaluate_boxes(gt, pred).write(tmp_path)
    details = load_metric_details(tmp_path)
    summary = load_metrics_summary(tmp_path)
    assert summary["label_aps"]["car"]["2.0"] == pytest.approx(1.0)
    fig = plot_pr_curves(details, summary, classes=["car"])
    red = (214, 39, 40)  # the 4 m curve, drawn last, lies on top of the three identical others
    img, u, v = _pixel(fig, fig.axes[0], 0.5, 1.0)
    assert _has_color(img, u, v, red)
    img, u, v = _pixel(fig, fig.axes[0], 0.5, 0.5)
    assert not _has_color(img, u, v, red)


def _details_for(cls: str, errs: dict, max_rec_idx: int = 80):
    md = _md(max_rec_idx, 0.9).serialize()
    md.update({k: list(map(float, v)) for k, v in errs.items()})
    return {(cls, 2.0): {k: np.asarray(v, dtype=np.float64) for k, v in md.items()}}


def _line_labels(ax):
    return [line.get_label() for line in ax.get_lines()]


def test_tp_curves_leave_out_metrics_that_do_not_apply():
    # the devkit stores a metric that does not apply (all-NaN errors) as a curve of ones
    ones = np.ones(101)
    details = _details_for("traffic_cone", {"attr_err": ones, "vel_err": ones, "orient_err": ones})
    nan = float("nan")
    summary = {"label_tp_errors": {"traffic_cone": {"trans_err": 0.3, "scale_err": 0.2, "orient_err": nan,
                                                    "vel_err": nan, "attr_err": nan}}}
    for s in (summary, None):  # from the summary's NaN, or by the devkit's class rule without one
        fig = plot_tp_curves(details, s)
        labels = _line_labels(fig.axes[0])
        assert [lbl.split()[0] for lbl in labels] == ["trans_err", "scale_err"], labels
        assert "n/a: orient_err, vel_err, attr_err" in [t.get_text() for t in fig.axes[0].texts]
    # a barrier keeps its orientation error, which may exceed the old fixed y limit of 1.5
    orient = np.linspace(0.5, 3.0, 101)
    fig = plot_tp_curves(_details_for("barrier", {"orient_err": orient, "attr_err": ones, "vel_err": ones}))
    ax = fig.axes[0]
    assert [lbl.split()[0] for lbl in _line_labels(ax)] == ["trans_err", "scale_err", "orient_err"]
    drawn = ax.get_lines()[2].get_ydata()
    assert drawn.max() == pytest.approx(orient[80])  # window: recall 0.11 .. last point with confidence
    assert ax.get_ylim()[1] >= drawn.max()


def test_empty_pr_panel_says_why():
    from kd3d.eval.nuscenes_det import no_predictions

    details = {("car", d): _md(60, 0.8).serialize() for d in (0.5, 1.0, 2.0, 4.0)}
    details.update({("bus", d): no_predictions() for d in (0.5, 1.0, 2.0, 4.0)})
    details = {k: {f: np.asarray(v, dtype=np.float64) for f, v in md.items()} for k, md in details.items()}
    details[("car", 0.5)]["confidence"][:] = 0  # no true positive at 0.5 m only

    def texts(fig, i):
        return " ".join(t.get_text() for t in fig.axes[i].texts)

    fig = plot_pr_curves(details, classes=["car", "bus"])
    assert texts(fig, 0) == "" and "0.5 m: no true positive" in [t.get_text() for t in fig.axes[0].get_legend().texts]
    assert len([ln for ln in fig.axes[1].get_lines() if len(ln.get_xdata()) > 2]) == 0
    assert "no GT of this class, no predictions" in texts(fig, 1) and "within 4 m" in texts(fig, 1)
    fig = plot_pr_curves(details, classes=["car", "bus"], num_gt={"car": 5, "bus": 0}, num_pred={"car": 5, "bus": 3})
    assert texts(fig, 1) == "no GT of this class"
    fig = plot_pr_curves(details, classes=["bus"], num_gt={"bus": 4}, num_pred={"bus": 0})
    assert texts(fig, 0) == "no predictions of this class"
