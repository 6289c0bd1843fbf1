"""Submission I/O: kd3d boxes -> official JSON -> NuscBoxes, and validation errors."""
import copy
import json

import numpy as np
import pytest

from kd3d.eval.formats import boxes_from_kd3d, check_sample_set, load_submission, to_submission, write_submission
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES
from kd3d.structures.geometry import pose_matrix


def _kd3d_sub():
    l2e = pose_matrix([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)], [0.9, 0.0, 1.8])
    e2g = pose_matrix([np.cos(0.3), 0, 0, np.sin(0.3)], [400.0, 1100.0, 0.0])
    boxes = [Boxes3D([[5, 1, -0.5, 4.2, 1.9, 1.6, 0.3, 2.0, 0.0], [-3, 8, 0, 0.5, 0.5, 1.0, 1.0, np.nan, np.nan]]),
             Boxes3D()]
    labels = [np.array([0, 8]), np.array([], int)]
    scores = [np.array([0.9, 0.4]), np.array([])]
    nb = boxes_from_kd3d(["t0", "t1"], boxes, scores, labels, [l2e, l2e], [e2g, e2g])
    return nb, boxes, l2e, e2g


def test_kd3d_to_submission_round_trip(tmp_path):
    nb, boxes, l2e, e2g = _kd3d_sub()
    path = write_submission(tmp_path / "r.json", nb)
    meta, back = load_submission(path)
    assert meta["use_lidar"] is True and back.sample_tokens == ["t0", "t1"]
    recs = boxes[0].to_nuscenes(l2e, e2g)
    np.testing.assert_allclose(back.translation, [r["translation"] for r in recs])
    np.testing.assert_allclose(back.size, [r["size"] for r in recs])
    assert back.velocity[1].tolist() == [0.0, 0.0]  # unknown velocity written as 0
    data = json.loads(path.read_text())
    car = data["results"]["t0"][0]
    assert car["detection_name"] == "car" and car["attribute_name"] == "vehicle.parked"
    assert data["results"]["t0"][1]["attribute_name"] == "" and data["results"]["t1"] == []
    # global yaw = lidar yaw + 90 deg mounting + 0.6 rad ego heading
    assert back.yaw[0] == pytest.approx(0.3 + np.pi / 2 + 0.6)


def _valid():
    nb, *_ = _kd3d_sub()
    return to_submission(nb)


@pytest.mark.parametrize("edit,match", [
    (lambda d: d.pop("meta"), "missing top-level field 'meta'"),
    (lambda d: d["results"]["t0"].extend([d["results"]["t0"][0]] * 499), "at most 500"),
    (lambda d: d["results"]["t0"][0].update(detection_name="tram"), "unknown detection_name 'tram'"),
    (lambda d: d["results"]["t0"][0].update(attribute_name="cycle.with_rider"), "does not belong to class 'car'"),
    (lambda d: d["results"]["t0"][1].update(attribute_name="vehicle.moving"), "does not belong"),
    (lambda d: d["results"]["t0"][0].update(translation=[1.0, float("nan"), 0.0]), "'translation' must hold"),
    (lambda d: d["results"]["t0"][0].update(detection_score=float("inf")), "'detection_score' must be a finite"),
    (lambda d: d["results"]["t0"][0].update(size=[1.0, 0.0, 1.0]), "'size' must be > 0"),
    (lambda d: d["results"]["t0"][0].update(rotation=[1.0, 0.0]), "'rotation' must be a list of 4"),
    (lambda d: d["results"]["t0"][0].pop("velocity"), "missing field"),
    (lambda d: d["results"]["t0"][0].update(sample_token="t1"), "differs from its results key"),
])
def test_validation_errors(edit, match):
    d = copy.deepcopy(_valid())
    edit(d)
    with pytest.raises(ValueError, match=match):
        load_submission(d)


def test_malformed_json_names_the_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"meta": {}, "results": {')
    with pytest.raises(ValueError, match="bad.json: malformed JSON"):
        load_submission(p)
    with pytest.raises(FileNotFoundError):
        load_submission(tmp_path / "nope.json")


def test_sample_set_check():
    check_sample_set(["a", "b"], ["b", "a"])
    with pytest.raises(ValueError, match="1 sample\\(s\\) of the split missing"):
        check_sample_set(["a"], ["a", "b"])
    with pytest.raises(ValueError, match="not in the split"):
        check_sample_set(["a", "c"], ["a"])


def test_tables_consistent():
    assert len(NUSC_DET_CLASSES) == 10 and len(NUSC_ATTRIBUTES) == 8
