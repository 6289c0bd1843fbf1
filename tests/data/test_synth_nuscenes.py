"""The synthetic nuScenes dataset is read by the official devkit and matches the simulation."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from synth_params import SYNTH_NUSC

nuscenes = pytest.importorskip("nuscenes.nuscenes")
from nuscenes.utils.data_classes import LidarPointCloud  # noqa: E402
from nuscenes.utils.geometry_utils import points_in_box  # noqa: E402
from nuscenes.utils.splits import create_splits_scenes  # noqa: E402

from kd3d.data.synth.nuscenes_writer import synth_scene  # noqa: E402
from kd3d.structures.classes import NUSC_LIDARSEG_CATEGORIES  # noqa: E402


@pytest.fixture(scope="module")
def nusc(synth_nuscenes):
    return nuscenes.NuScenes(version=synth_nuscenes["version"], dataroot=synth_nuscenes["dataroot"], verbose=False)


def _scene_index(nusc, sample) -> int:
    return [s["token"] for s in nusc.scene].index(sample["scene_token"])


def _t(nusc, sample, timestamp) -> float:
    scene = nusc.get("scene", sample["scene_token"])
    return (timestamp - nusc.get("sample", scene["first_sample_token"])["timestamp"]) * 1e-6


def test_tables_and_splits(nusc, synth_nuscenes):
    n = SYNTH_NUSC["scenes"] * SYNTH_NUSC["samples_per_scene"]
    assert len(nusc.sample) == n and synth_nuscenes["samples"] == n
    splits = create_splits_scenes()
    names = {s["name"] for s in nusc.scene}
    assert names & set(splits["mini_train"]) and names & set(splits["mini_val"])
    assert len(nusc.category) == 32 and sorted(c["index"] for c in nusc.category) == list(range(32))
    for sample in nusc.sample:
        assert set(sample["data"]) == {"LIDAR_TOP", "CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT",
                                       "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"}
        # the key frame is preceded by exactly `sweeps` non-key LiDAR sweeps
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        for _ in range(SYNTH_NUSC["sweeps"]):
            sd = nusc.get("sample_data", sd["prev"])
            assert not sd["is_key_frame"] and sd["filename"].startswith("sweeps/LIDAR_TOP/")
    cams = [sd for sd in nusc.sample_data if sd["channel"] == "CAM_FRONT"]
    assert all((sd["width"], sd["height"]) == SYNTH_NUSC["image_size"] for sd in cams)
    det = {a["category_name"] for a in nusc.sample_annotation}
    assert {"vehicle.car", "human.pedestrian.adult"} <= det


def test_box_velocity_matches_simulation(nusc):
    checked = 0
    scenes = {}
    for ann in nusc.sample_annotation:
        if not ann["prev"] or not ann["next"]:
            continue
        sample = nusc.get("sample", ann["sample_token"])
        si = _scene_index(nusc, sample)
        if si not in scenes:
            scenes[si] = synth_scene(SYNTH_NUSC["seed"], si, SYNTH_NUSC["samples_per_scene"])
        boxes = scenes[si].object_boxes(_t(nusc, sample, sample["timestamp"]))
        i = np.argmin(np.linalg.norm(boxes[:, :3] - np.array(ann["translation"]), axis=1))
        assert np.allclose(boxes[i, :3], ann["translation"], atol=1e-6)
        v = nusc.box_velocity(ann["token"])
        assert np.all(np.isfinite(v))
        assert np.allclose(v[:2], boxes[i, 7:9], atol=0.01 + 0.002 * np.linalg.norm(boxes[i, 7:9]))
        checked += 1
    assert checked > 20
    speeds = [np.linalg.norm(nusc.box_velocity(a["token"])[:2]) for a in nusc.sample_annotation
              if a["prev"] and a["next"]]
    assert max(speeds) > 2.0, "some simulated objects must move"


def test_lidar_points_boxes_and_lidarseg(nusc):
    n_zero = n_pos = 0
    for sample in nusc.sample:
        token = sample["data"]["LIDAR_TOP"]
        path, boxes, _ = nusc.get_sample_data(token)
        assert len(boxes) == len(sample["anns"]) > 0
        pc = LidarPointCloud.from_file(path)
        labels = np.fromfile(Path(nusc.dataroot) / nusc.get("lidarseg", token)["filename"], dtype=np.uint8)
        assert labels.shape[0] == pc.points.shape[1] > 10000
        assert labels.max() < 32
        cls = set(np.unique(labels))
        assert {NUSC_LIDARSEG_CATEGORIES.index(c) for c in ("flat.driveable_surface", "static.manmade")} <= cls
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            inside = points_in_box(box, pc.points[:3])
            assert inside.sum() == ann["num_lidar_pts"]
            n_zero += ann["num_lidar_pts"] == 0
            n_pos += ann["num_lidar_pts"] > 0
            if ann["num_lidar_pts"] > 0 and ann["category_name"] != "static_object.bicycle_rack":
                # points inside a box are mostly labelled with the box's category
                frac = np.mean(labels[inside] == NUSC_LIDARSEG_CATEGORIES.index(ann["category_name"]))
                assert frac > 0.5, (ann["category_name"], frac)
    assert n_zero > 0 and n_pos > n_zero / 4
    nusc.list_lidarseg_categories(sort_by="count")
    nusc.get_sample_lidarseg_stats(nusc.sample[0]["token"])


def test_sweep_boxes_interpolate(nusc):
    sample = nusc.sample[1]
    sd = nusc.get("sample_data", nusc.get("sample_data", sample["data"]["LIDAR_TOP"])["prev"])
    boxes = nusc.get_boxes(sd["token"])
    assert len(boxes) > 0
    pts = np.fromfile(Path(nusc.dataroot) / sd["filename"], dtype=np.float32).reshape(-1, 5)
    assert pts.shape[0] > 10000 and np.all(np.isin(pts[:, 4], np.arange(32)))


def test_detection_eval_filters(nusc):
    """The devkit's GT loading and filtering (distance, points, bike racks) accept the data;
    parked bicycles inside a bicycle_rack annotation are removed by the rack filter."""
    from nuscenes.eval.common.loaders import add_center_dist, filter_eval_boxes, load_gt
    from nuscenes.eval.detection.config import config_factory
    from nuscenes.eval.detection.data_classes import DetectionBox

    from nuscenes.utils.data_classes import Box
    from pyquaternion import Quaternion

    def n_in_racks(boxes) -> int:
        n = 0
        for token in boxes.sample_tokens:
            racks = [nusc.get("sample_annotation", a) for a in nusc.get("sample", token)["anns"]]
            racks = [Box(r["translation"], r["size"], Quaternion(r["rotation"])) for r in racks
                     if r["category_name"] == "static_object.bicycle_rack"]
            n += sum(int(points_in_box(rb, np.array(b.translation)[:, None])[0])
                     for b in boxes[token] for rb in racks)
        return n

    cfg = config_factory("detection_cvpr_2019")
    before = after = kept = 0
    for split in ("mini_train", "mini_val"):
        gt = add_center_dist(nusc, load_gt(nusc, split, DetectionBox, verbose=False))
        before += n_in_racks(gt)
        filtered = filter_eval_boxes(nusc, gt, cfg.class_range, verbose=False)
        kept += len(filtered.all)
        after += n_in_racks(filtered)
    assert kept > 20
    assert before > 0, "the fixture should hold bicycles parked in racks"
    assert after == 0


def _project(nusc, lidar_sd, cam_sd, pts):
    """LiDAR sensor frame -> camera pixels through the calibrated_sensor / ego_pose records."""
    from kd3d.structures.geometry import pose_matrix, transform_points

    def mat(rec):
        return pose_matrix(rec["rotation"], rec["translation"])

    l_cs, l_ep = nusc.get("calibrated_sensor", lidar_sd["calibrated_sensor_token"]), nusc.get("ego_pose", lidar_sd["ego_pose_token"])
    c_cs, c_ep = nusc.get("calibrated_sensor", cam_sd["calibrated_sensor_token"]), nusc.get("ego_pose", cam_sd["ego_pose_token"])
    cam2global = mat(c_ep) @ mat(c_cs)
    m = np.linalg.inv(cam2global) @ mat(l_ep) @ mat(l_cs)
    p = transform_points(pts, m)
    K = np.array(c_cs["camera_intrinsic"])
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (p @ K.T)[:, :2] / p[:, 2:3]
    return uv, p[:, 2], cam2global, K


def test_projection_lands_on_rendered_objects(nusc):
    from PIL import Image

    from kd3d.data.synth.camera import render

    sample = nusc.sample[SYNTH_NUSC["samples_per_scene"]]
    scene = synth_scene(SYNTH_NUSC["seed"], _scene_index(nusc, sample), SYNTH_NUSC["samples_per_scene"])
    lidar_sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
    pts = np.fromfile(Path(nusc.dataroot) / lidar_sd["filename"], dtype=np.float32).reshape(-1, 5)
    labels = np.fromfile(Path(nusc.dataroot) / nusc.get("lidarseg", lidar_sd["token"])["filename"], dtype=np.uint8)
    total = agree = centre_total = centre_agree = 0
    for chan in ("CAM_FRONT", "CAM_BACK_LEFT", "CAM_BACK"):
        cam_sd = nusc.get("sample_data", sample["data"][chan])
        w, h = cam_sd["width"], cam_sd["height"]
        uv, z, cam2global, K = _project(nusc, lidar_sd, cam_sd, pts[:, :3])
        t = _t(nusc, sample, cam_sd["timestamp"])
        out = render(scene, t, cam2global, K, w, h, np.random.default_rng(0))
        stored = np.asarray(Image.open(Path(nusc.dataroot) / cam_sd["filename"]), dtype=np.float64)
        assert np.abs(stored - out["image"]).mean() < 6.0, "the JPEG must be the render of this pose"
        ok = (z > 1.0) & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        # drop points on the ego's own bonnet, not rendered by the cameras
        ok &= labels != NUSC_LIDARSEG_CATEGORIES.index("vehicle.ego")
        u, v = uv[ok, 0].astype(int), uv[ok, 1].astype(int)
        total += ok.sum()
        agree += (out["seg"][v, u] == labels[ok]).sum()
        # GT box centres of well-visible objects land on pixels of their category
        _, boxes, _ = nusc.get_sample_data(cam_sd["token"])
        for box in boxes:
            ann = nusc.get("sample_annotation", box.token)
            if ann["visibility_token"] != "4" or box.center[2] < 1.0 or "rack" in ann["category_name"]:
                continue
            c = K @ box.center
            cu, cv = int(c[0] / c[2]), int(c[1] / c[2])
            if 0 <= cu < w and 0 <= cv < h:
                centre_total += 1
                centre_agree += out["seg"][cv, cu] == NUSC_LIDARSEG_CATEGORIES.index(ann["category_name"])
    assert total > 3000
    assert agree / total > 0.9, agree / total
    assert centre_total >= 3 and centre_agree / centre_total > 0.8, (centre_agree, centre_total)


def test_deterministic_per_seed(tmp_path):
    from kd3d.data.synth import generate_nuscenes

    kw = dict(scenes=1, samples_per_scene=1, image_size=(48, 32), sweeps=1, progress=False)
    a = generate_nuscenes(tmp_path / "a", seed=11, **kw)
    b = generate_nuscenes(tmp_path / "b", seed=11, **kw)
    c = generate_nuscenes(tmp_path / "c", seed=12, **kw)

    def files(root):
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in Path(root).rglob("*") if p.is_file()}

    fa, fb, fc = files(a["dataroot"]), files(b["dataroot"]), files(c["dataroot"])
    assert fa == fb
    assert json.loads(fa["v1.0-mini/sample_annotation.json"]) != json.loads(fc["v1.0-mini/sample_annotation.json"])


def test_bad_arguments(tmp_path):
    from kd3d.data.synth import generate_nuscenes

    with pytest.raises(ValueError, match="at most 10 scenes"):
        generate_nuscenes(tmp_path / "x", scenes=11, version="v1.0-mini", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_nuscenes(tmp_path / "full", scenes=1, samples_per_scene=1, progress=False)
    generate_nuscenes(tmp_path / "full", scenes=1, samples_per_scene=1, image_size=(32, 24), sweeps=0,
                      overwrite=True, progress=False)
    assert (tmp_path / "full" / "keep.txt").read_text() == "user data"
    with pytest.raises(ValueError, match="sweeps"):
        generate_nuscenes(tmp_path / "y", sweeps=12, progress=False)


def test_split_names_and_trainval(tmp_path):
    from kd3d.data.synth import generate_nuscenes
    from kd3d.data.synth.nuscenes_writer import _split_names, choose_version

    splits = create_splits_scenes()
    assert choose_version(10, None) == "v1.0-mini" and choose_version(11, None) == "v1.0-trainval"
    names = _split_names(10, "v1.0-mini")
    assert [n for n, s in names if s == "mini_val"] == splits["mini_val"]
    assert [s for _, s in _split_names(2, "v1.0-mini")] == ["mini_train", "mini_val"]
    assert [s for _, s in _split_names(1, "v1.0-mini")] == ["mini_train"]
    with pytest.raises(ValueError, match="version"):
        _split_names(3, "v2.0")
    summary = generate_nuscenes(tmp_path / "tv", scenes=11, samples_per_scene=1, seed=1, image_size=(32, 24),
                                sweeps=0, progress=False)
    assert summary["version"] == "v1.0-trainval"
    nusc = nuscenes.NuScenes(version="v1.0-trainval", dataroot=summary["dataroot"], verbose=False)
    names = {s["name"] for s in nusc.scene}
    assert len(names) == 11 and names <= set(splits["train"]) | set(splits["val"])
    assert names & set(splits["val"]) and names & set(splits["train"])
