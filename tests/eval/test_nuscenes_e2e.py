"""End to end on a generated dataset: kd3d.eval.evaluate_nuscenes vs the devkit's DetectionEval."""
import json

import numpy as np
import pytest

pytest.importorskip("nuscenes")

from kd3d.testing.devkit_ref import compare_summaries  # noqa: E402
from kd3d.eval.formats import to_submission  # noqa: E402
from kd3d.eval.nuscenes_det import evaluate_nuscenes  # noqa: E402
from kd3d.eval.nuscenes_gt import load_gt, split_sample_tokens  # noqa: E402

SPLIT = "mini_val"


def _predictions(gt, seed):
    rng = np.random.default_rng(seed)
    pred = gt.select(rng.random(len(gt)) < 0.8)
    n = len(pred)
    pred.translation[:, :2] += rng.exponential(0.7, (n, 1)) * rng.normal(size=(n, 2))
    pred.size[:] *= rng.uniform(0.8, 1.2, (n, 3))
    pred.velocity[:] = np.nan_to_num(pred.velocity) + rng.normal(0, 0.5, (n, 2))
    pred.score[:] = np.round(rng.random(n), 1)  # ties
    fps = pred.select(rng.random(n) < 0.5)
    fps.translation[:, :2] += rng.uniform(-8, 8, (len(fps), 2))
    fps.score[:] = np.round(rng.random(len(fps)) * 0.5, 2)
    fps.score[:3] = 0.0
    from kd3d.eval.formats import NuscBoxes

    cat = lambda a, b: np.concatenate([a, b])  # noqa: E731
    return NuscBoxes(pred.sample_tokens, cat(pred.sample_idx, fps.sample_idx), cat(pred.translation, fps.translation),
                     cat(pred.size, fps.size), cat(pred.rotation, fps.rotation), cat(pred.velocity, fps.velocity),
                     cat(pred.label, fps.label), cat(pred.score, fps.score), cat(pred.attr, fps.attr))


def test_gt_loading_equals_devkit(tiny_nusc):
    from nuscenes.eval.common.loaders import load_gt as devkit_load_gt
    from nuscenes.eval.detection.data_classes import DetectionBox

    nusc, _ = tiny_nusc
    tokens = split_sample_tokens(nusc, SPLIT)
    ours = load_gt(nusc, tokens)
    ref = devkit_load_gt(nusc, SPLIT, DetectionBox)
    assert ref.sample_tokens == tokens and len(ours) == len(ref.all) > 10
    np.testing.assert_array_equal(ours.translation, [b.translation for b in ref.all])
    np.testing.assert_array_equal(ours.velocity, [b.velocity for b in ref.all])
    assert ours.num_pts.tolist() == [b.num_pts for b in ref.all]


@pytest.mark.parametrize("seed", [0, 1])
def test_detection_eval_equals_devkit(tiny_nusc, tmp_path, seed):
    from nuscenes.eval.common.config import config_factory
    from nuscenes.eval.detection.evaluate import DetectionEval

    nusc, _ = tiny_nusc
    tokens = split_sample_tokens(nusc, SPLIT)
    sub = to_submission(_predictions(load_gt(nusc, tokens), seed))
    path = tmp_path / "results.json"
    path.write_text(json.dumps(sub))
    ours = evaluate_nuscenes(nusc, SPLIT, str(path), out_dir=tmp_path / "ours", verbose=False)
    de = DetectionEval(nusc, config_factory("detection_cvpr_2019"), str(path), SPLIT,
                       output_dir=str(tmp_path / "devkit"), verbose=False)
    metrics, _ = de.evaluate()
    ref = metrics.serialize()
    assert compare_summaries(ours.summary, ref) == []
    assert ours.mean_ap > 0.05
    # the in-memory dict gives the same numbers without a file
    again = evaluate_nuscenes(nusc, SPLIT, sub, verbose=False)
    assert again.nds == ours.nds
    from kd3d.eval.formats import load_submission

    arrays = evaluate_nuscenes(nusc, SPLIT, load_submission(sub)[1], verbose=False)
    assert arrays.nds == ours.nds
    assert (tmp_path / "ours" / "metrics_summary.json").is_file()


def test_sample_set_must_match_split(tiny_nusc):
    nusc, _ = tiny_nusc
    tokens = split_sample_tokens(nusc, SPLIT)
    gt = load_gt(nusc, tokens)
    gt.velocity[:] = 0.0
    sub = to_submission(gt)
    missing = dict(sub, results={k: v for k, v in list(sub["results"].items())[1:]})
    with pytest.raises(ValueError, match="missing from results"):
        evaluate_nuscenes(nusc, SPLIT, missing, verbose=False)
    extra = dict(sub, results=dict(sub["results"], not_a_sample=[]))
    with pytest.raises(ValueError, match="not in the split"):
        evaluate_nuscenes(nusc, SPLIT, extra, verbose=False)
    with pytest.raises(ValueError, match="needs a \\*trainval version"):
        evaluate_nuscenes(nusc, "val", sub, verbose=False)
