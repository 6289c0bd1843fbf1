"""Box filtering (class range, zero points, bicycle racks) vs the devkit's filter_eval_boxes."""
import numpy as np
import pytest

pytest.importorskip("nuscenes")

from kd3d.testing.devkit_ref import to_eval_boxes  # noqa: E402
from kd3d.eval.formats import NuscBoxes  # noqa: E402
from kd3d.eval.nuscenes_gt import SceneInfo, filter_boxes, in_racks  # noqa: E402
from kd3d.structures.classes import NUSC_CLASS_RANGE, NUSC_DET_CLASSES  # noqa: E402


class _Tables:
    """The four devkit tables filter_eval_boxes/add_center_dist read, held in dicts."""

    def __init__(self):
        self.t = {"sample": {}, "sample_annotation": {}, "sample_data": {}, "ego_pose": {}}

    def get(self, table, token):
        return self.t[table][token]


def _scene(rng, n_samples):
    tables = _Tables()
    tokens = [f"s{i}" for i in range(n_samples)]
    ego = np.c_[rng.uniform(-500, 500, (n_samples, 2)), np.zeros(n_samples)]
    racks = []
    for i, tok in enumerate(tokens):
        anns = []
        k = rng.integers(0, 3)
        rk = []
        for j in range(k):
            yaw = rng.uniform(-np.pi, np.pi)
            rec = {"category_name": "static_object.bicycle_rack",
                   "translation": [ego[i, 0] + rng.uniform(-20, 20), ego[i, 1] + rng.uniform(-20, 20), 0.5],
                   "size": [2.0, 6.0, 1.5], "rotation": [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]}
            tables.t["sample_annotation"][f"{tok}_r{j}"] = rec
            anns.append(f"{tok}_r{j}")
            rk.append(rec["translation"] + rec["size"] + rec["rotation"])
        tables.t["sample"][tok] = {"anns": anns, "data": {"LIDAR_TOP": f"sd_{tok}"}}
        tables.t["sample_data"][f"sd_{tok}"] = {"ego_pose_token": f"ep_{tok}"}
        tables.t["ego_pose"][f"ep_{tok}"] = {"translation": ego[i].tolist()}
        racks.append(np.array(rk).reshape(-1, 10))
    return tables, SceneInfo(tokens, ego, racks)


def _boxes(rng, scene, n_per_sample, with_pts):
    rows = []
    for s, tok in enumerate(scene.sample_tokens):
        for _ in range(n_per_sample):
            c = rng.integers(len(NUSC_DET_CLASSES))
            r = NUSC_CLASS_RANGE[NUSC_DET_CLASSES[c]]
            mode = rng.integers(3)
            if mode == 0 and len(scene.racks[s]):  # near or inside a rack, bikes more often
                c = rng.choice([6, 7, 0])
                xy = scene.racks[s][rng.integers(len(scene.racks[s])), :2] + rng.uniform(-2.5, 2.5, 2)
            elif mode == 1:  # exactly at / just inside the class range
                ang = rng.uniform(0, 2 * np.pi)
                xy = scene.ego_translation[s, :2] + r * np.array([np.cos(ang), np.sin(ang)]) * rng.choice([1.0, 0.999999])
            else:
                xy = scene.ego_translation[s, :2] + rng.uniform(-55, 55, 2)
            rows.append((s, [xy[0], xy[1], rng.uniform(0, 1.5)], c))
    n = len(rows)
    pts = np.where(rng.random(n) < 0.2, 0, 5) if with_pts else np.full(n, -1)
    return NuscBoxes(scene.sample_tokens, [r[0] for r in rows], [r[1] for r in rows], np.ones((n, 3)),
                     np.tile([1.0, 0, 0, 0], (n, 1)), np.zeros((n, 2)), [r[2] for r in rows], rng.random(n),
                     np.full(n, -1), pts)


@pytest.mark.parametrize("with_pts", [True, False])
def test_filter_equals_devkit(with_pts):
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes

    rng = np.random.default_rng(4 + with_pts)
    tables, scene = _scene(rng, 12)
    boxes = _boxes(rng, scene, 40, with_pts)
    ours = filter_boxes(boxes, scene, NUSC_CLASS_RANGE)
    eb = filter_eval_boxes(tables, add_center_dist(tables, to_eval_boxes(boxes, with_pts)), NUSC_CLASS_RANGE)
    ref = np.array([b.translation for b in eb.all]).reshape(-1, 3)
    assert len(ours) == len(ref) and 0 < len(ours) < len(boxes)
    np.testing.assert_array_equal(ours.translation, ref)


def test_in_racks_boundary_and_rotation():
    rack = np.array([[10.0, 5.0, 0.5, 2.0, 6.0, 1.0, np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)]])
    # yaw 90 deg: length 6 along y, width 2 along x
    pts = np.array([[10.0, 7.9, 0.5], [10.0, 8.1, 0.5], [10.9, 5.0, 0.5], [11.1, 5.0, 0.5], [10.0, 5.0, 1.2]])
    assert in_racks(pts, rack).tolist() == [True, False, True, False, False]
