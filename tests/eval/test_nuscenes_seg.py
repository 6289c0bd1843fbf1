"""lidarseg mIoU: hand-computed case, validation, and equality with the devkit's mapper +
ConfusionMatrix on a generated dataset."""
from pathlib import Path

import numpy as np
import pytest

from kd3d.eval.nuscenes_seg import SegResult, confusion_matrix, evaluate_arrays, evaluate_lidarseg, write_predictions

SPLIT = "mini_val"


def test_hand_computed_miou():
    gt = np.array([1, 1, 2, 0, 0])
    pred = np.array([1, 2, 2, 3, 1])
    res = evaluate_arrays([gt], [pred])
    iou = res.iou
    assert iou[1] == 0.5 and iou[2] == 0.5  # GT-0 points are ignored: no FP for classes 1 and 3
    assert np.isnan(iou[0]) and np.isnan(iou[3]) and res.miou == 0.5
    assert res.to_dict()["iou_per_class"]["barrier"] == 0.5


def test_validation_errors():
    with pytest.raises(ValueError, match="3 predicted labels for 2 points"):
        confusion_matrix(np.array([1, 2]), np.array([1, 2, 3]), "x.bin")
    with pytest.raises(ValueError, match="outside 1..16"):
        confusion_matrix(np.array([1, 2]), np.array([0, 2]))
    with pytest.raises(ValueError, match="outside 1..16.*e.g. 17"):
        confusion_matrix(np.array([1, 2]), np.array([17, 2]))
    assert SegResult(confusion_matrix(np.array([4]), np.array([4]))).miou == 1.0


def test_equals_devkit_on_generated_dataset(tiny_nusc, tmp_path):
    from nuscenes.eval.lidarseg.utils import ConfusionMatrix, LidarsegClassMapper

    from kd3d.eval.nuscenes_gt import split_sample_tokens
    from kd3d.eval.nuscenes_seg import fine_to_coarse_lut

    nusc, _ = tiny_nusc
    mapper = LidarsegClassMapper(nusc)
    lut = fine_to_coarse_lut(nusc.category)
    for fine, coarse in mapper.fine_idx_2_coarse_idx_mapping.items():
        assert lut[fine] == coarse
    rng = np.random.default_rng(0)
    tokens = split_sample_tokens(nusc, SPLIT)
    sd_tokens, preds, ref_cm = [], [], ConfusionMatrix(17, 0)
    for token in tokens:
        sd = nusc.get("sample", token)["data"]["LIDAR_TOP"]
        fine = np.fromfile(Path(nusc.dataroot) / nusc.get("lidarseg", sd)["filename"], dtype=np.uint8)
        gt = mapper.convert_label(fine)
        pred = np.where(rng.random(len(gt)) < 0.7, gt, rng.integers(1, 17, len(gt)))
        pred[pred == 0] = 11
        pred[pred == 9] = 10  # trailer never predicted
        sd_tokens.append(sd)
        preds.append(pred)
        ref_cm.update(gt, pred)
    write_predictions(tmp_path / "res", SPLIT, sd_tokens, preds)
    ours = evaluate_lidarseg(nusc, SPLIT, tmp_path / "res", out_dir=tmp_path / "out", verbose=False)
    np.testing.assert_array_equal(ours.confusion, ref_cm.global_cm)
    np.testing.assert_array_equal(ours.iou, ref_cm.get_per_class_iou())
    assert ours.miou == ref_cm.get_mean_iou() and ours.fwiou == ref_cm.get_freqweighted_iou()
    assert 0.2 < ours.miou < 1.0 and (tmp_path / "out" / "lidarseg_metrics.json").is_file()
    # a missing prediction file is named in the error
    (tmp_path / "res" / "lidarseg" / SPLIT / f"{sd_tokens[0]}_lidarseg.bin").unlink()
    with pytest.raises(FileNotFoundError, match=f"{sd_tokens[0]}_lidarseg.bin"):
        evaluate_lidarseg(nusc, SPLIT, tmp_path / "res", verbose=False)
