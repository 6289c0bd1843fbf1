"""nuScenes detection metrics vs the devkit's own accumulate/calc_ap/calc_tp pipeline."""
import numpy as np
import pytest

pytest.importorskip("nuscenes")

from kd3d.testing.devkit_ref import compare_summaries, devkit_metrics, to_eval_boxes  # noqa: E402
from kd3d.eval.formats import NuscBoxes  # noqa: E402
from kd3d.eval.nuscenes_det import evaluate_boxes, greedy_match  # noqa: E402
from kd3d.testing.nuscenes_cases import make_case  # noqa: E402
from kd3d.structures.classes import NUSC_DET_CLASSES  # noqa: E402


def _check(gt, pred):
    ours = evaluate_boxes(gt, pred)
    ref, details, _ = devkit_metrics(to_eval_boxes(gt, True), to_eval_boxes(pred, False))
    assert compare_summaries(ours.summary, ref) == []
    assert set(ours.details) == set(details)
    for key, md in details.items():
        for name, arr in md.items():
            np.testing.assert_allclose(ours.details[key][name], arr, atol=1e-9, rtol=0, err_msg=f"{key} {name}")
    return ours, ref


@pytest.mark.parametrize("seed,samples,n_gt,n_pred,skip", [
    (0, 12, 12, 25, (9,)),        # barrier never predicted
    (1, 25, 20, 40, ()),
    (2, 6, 3, 8, (0, 1)),         # few boxes, car/truck without predictions
])
def test_matches_devkit_on_generated_cases(seed, samples, n_gt, n_pred, skip):
    gt, pred = make_case(samples, n_gt, n_pred, seed=seed, extent=20.0, skip_pred_classes=skip)
    ours, ref = _check(gt, pred)
    assert 0 < ours.nds < 1 and np.isnan(ref["label_tp_errors"]["barrier"]["attr_err"])


def test_heavy_ties_and_zero_scores():
    # all scores in {0, 0.5, 1}: the later-row-first tie order decides most matches
    gt, pred = make_case(10, 10, 30, seed=7, extent=8.0, score_decimals=0, p_zero_score=0.3)
    pred.score[:] = np.round(pred.score * 2) / 2
    _check(gt, pred)


def test_distance_ties_pick_earlier_gt():
    # two GT at the same distance from one prediction: the devkit takes the first GT row
    tokens = ["a"]
    q = np.array([[1.0, 0, 0, 0]] * 2)
    gt = NuscBoxes(tokens, [0, 0], [[1.0, 0, 0], [-1.0, 0, 0]], [[1, 2, 1], [2, 4, 1]], q,
                   [[0, 0], [np.nan, np.nan]], [0, 0], [-1, -1], [0, -1], [5, 5])
    pred = NuscBoxes(tokens, [0], [[0.0, 0, 0]], [[1, 2, 1]], q[:1], [[0, 0]], [0], [0.9], [0])
    m = greedy_match(pred.sample_idx, pred.translation[:, :2], gt.sample_idx, gt.translation[:, :2], [2.0])
    assert m[2.0].tolist() == [0]
    _check(gt, pred)


def test_threshold_is_strict():
    tokens = ["a"]
    q = np.array([[1.0, 0, 0, 0]])
    gt = NuscBoxes(tokens, [0], [[0.0, 0, 0]], [[1, 1, 1]], q, [[0, 0]], [5], [-1], [6], [3])
    pred = NuscBoxes(tokens, [0], [[1.0, 0, 0]], [[1, 1, 1]], q, [[0, 0]], [5], [0.5], [6])
    ours, _ = _check(gt, pred)
    aps = ours.summary["label_aps"]["pedestrian"]
    assert aps[0.5] == 0.0 and aps[1.0] == 0.0
    assert aps[2.0] == pytest.approx(1.0) and aps[4.0] == pytest.approx(1.0)


def test_perfect_predictions_and_empty_inputs():
    gt, _ = make_case(8, 6, 0, seed=3, extent=20.0, p_nan_vel=0.0, p_no_attr=0.0, p_empty=0.0)
    pred = gt.select(np.ones(len(gt), bool))
    pred.score[:] = np.linspace(1, 0.1, len(gt))
    ours, _ = _check(gt, pred)
    present = {NUSC_DET_CLASSES[c] for c in np.unique(gt.label)}
    for name in present:
        assert ours.summary["mean_dist_aps"][name] == pytest.approx(1.0)
        assert ours.summary["label_tp_errors"][name]["trans_err"] == pytest.approx(0.0, abs=1e-12)
    empty = NuscBoxes.empty(gt.sample_tokens)
    ours, _ = _check(gt, empty)
    assert ours.mean_ap == 0.0
    ours, _ = _check(NuscBoxes.empty(gt.sample_tokens), pred)
    assert ours.nds == 0.0


def test_result_files_have_devkit_keys(tmp_path):
    gt, pred = make_case(4, 5, 10, seed=11, extent=20.0)
    res = evaluate_boxes(gt, pred, meta={"use_lidar": True})
    res.write(tmp_path)
    import json

    summary = json.loads((tmp_path / "metrics_summary.json").read_text())
    assert set(summary) == {"label_aps", "mean_dist_aps", "mean_ap", "label_tp_errors", "tp_errors", "tp_scores",
                            "nd_score", "eval_time", "cfg", "meta"}
    assert set(summary["label_aps"]["car"]) == {"0.5", "1.0", "2.0", "4.0"}
    details = json.loads((tmp_path / "metrics_details.json").read_text())
    assert len(details) == 40 and len(details["car:2.0"]["precision"]) == 101
    text = res.format()
    assert text.startswith("mAP: ") and "NDS: " in text and "Per-class results:" in text
