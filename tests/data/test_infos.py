"""mmdet3d info files read as kd3d datasets (kd3d.data.infos).

Two oracles: (1) synthetic nuScenes / KITTI written in mmdet3d's layouts by kd3d.testing's
writer (from the devkit API, not kd3d's index) must give the Samples of kd3d's own loaders;
(2) real mmdet3d test data (tests/fixtures/mmdet3d_data, README there): the KITTI gt-database
points mmdet3d cut out of one box must all lie in the box kd3d reads from the info file, and
moving nuScenes boxes must head along their velocity.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from kd3d.data.infos import KittiInfoDataset, NuScenesInfoDataset, info_dataset, read_infos
from kd3d.data.kitti import KittiDataset
from kd3d.data.nuscenes import NuScenesDataset
from kd3d.data.pkl import load_pkl
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.geometry import limit_period
from kd3d.testing.mmdet3d_infos import write_kitti_infos, write_nuscenes_infos

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mmdet3d_data"


@pytest.fixture(scope="module")
def nusc_ref(synth_nuscenes):
    ref = NuScenesDataset(synth_nuscenes["dataroot"], synth_nuscenes["version"], "all", sweeps=3)
    return ref, {t: i for i, t in enumerate(ref.tokens)}


@pytest.mark.parametrize("layout,legacy,negated,poses", [
    ("1.x", False, False, True), ("1.x", False, False, False), ("1.x", False, True, False),
    ("0.x", True, False, True), ("0.x", False, False, True)])
def test_nuscenes_infos_give_the_loaders_samples(synth_nuscenes, nusc_ref, tmp_path, layout, legacy, negated, poses):
    root = synth_nuscenes["dataroot"]
    path = write_nuscenes_infos(root, synth_nuscenes["version"], tmp_path / "infos.pkl", layout=layout,
                                legacy_boxes=legacy, negated_translations=negated, sweep_poses=poses)
    ds = info_dataset(path, root, sweeps=3)
    assert isinstance(ds, NuScenesInfoDataset)
    assert ds.info.box_convention == ("legacy" if legacy else "lwh")  # found from the boxes ('auto')
    assert ds.info.negated_translations == negated  # found from the cameras
    ref, order = nusc_ref
    assert sorted(ds.tokens) == sorted(ref.tokens)
    cam_tol = 1e-6 if layout == "1.x" else 1e-9  # 1.x stores lidar2cam as float32
    for i in range(len(ds)):
        a = ds[i]
        b = ref[order[a.token]]
        assert a.num_key_points == b.num_key_points
        np.testing.assert_allclose(a.points, b.points, atol=1e-5 if poses else 1e-4)  # float32 lidar2sensor
        assert len(a.gt_boxes) == len(b.gt_boxes) > 0
        np.testing.assert_allclose(a.gt_boxes.data[:, :6], b.gt_boxes.data[:, :6], atol=1e-9)
        np.testing.assert_allclose(limit_period(a.gt_boxes.yaw - b.gt_boxes.yaw), 0, atol=1e-9)
        np.testing.assert_allclose(a.gt_boxes.velocity, b.gt_boxes.velocity, atol=1e-9)  # NaN where unknown
        np.testing.assert_array_equal(a.gt_labels, b.gt_labels)  # mmdet3d's class order mapped by name
        np.testing.assert_array_equal(a.gt_num_points, b.gt_num_points)
        np.testing.assert_array_equal(a.images, b.images)
        assert a.cam_names == b.cam_names
        np.testing.assert_allclose(a.cam_intrinsics, b.cam_intrinsics, atol=1e-9)
        np.testing.assert_allclose(a.cam2lidar, b.cam2lidar, atol=cam_tol)
        np.testing.assert_allclose(a.lidar2ego, b.lidar2ego, atol=1e-9)
        np.testing.assert_allclose(a.ego2global, b.ego2global, atol=1e-9)
        assert a.timestamp == pytest.approx(b.timestamp, abs=1e-6)
        assert (a.gt_attrs == -1).all()  # info files carry no attributes
        assert list(a.meta["box_meta"]["name"]) == [ref.class_names[k] for k in b.gt_labels]


@pytest.mark.parametrize("layout", ["1.x", "0.x"])
def test_kitti_infos_give_the_loaders_samples(synth_kitti, tmp_path, layout):
    root = synth_kitti["root"]
    ds = info_dataset(write_kitti_infos(root, "train", tmp_path / "infos.pkl", layout=layout), root, split="train")
    ref = KittiDataset(root, "train")
    assert isinstance(ds, KittiInfoDataset) and ds.tokens == ref.tokens
    tol = 1e-5 if layout == "1.x" else 1e-12  # 1.x stores R0_rect / Tr_velo_to_cam as float32
    for a, b in ((ds[i], ref[i]) for i in range(len(ref))):
        np.testing.assert_array_equal(a.points, b.points)
        np.testing.assert_allclose(a.gt_boxes.data[:, :7], b.gt_boxes.data[:, :7], atol=tol)
        np.testing.assert_array_equal(a.gt_labels, b.gt_labels)
        np.testing.assert_array_equal(a.meta["box_meta"]["difficulty"], b.meta["box_meta"]["difficulty"])
        np.testing.assert_allclose(a.cam_intrinsics, b.cam_intrinsics, atol=1e-9)
        np.testing.assert_allclose(a.cam2lidar, b.cam2lidar, atol=tol)
        np.testing.assert_array_equal(a.images, b.images)
        # the synthetic objects are boxes, so their points lie on the faces: a 1e-6 m float32 shift
        # of a face moves at most one point across it in these frames
        assert np.abs(a.gt_num_points - b.gt_num_points).max() <= (1 if layout == "1.x" else 0)


def test_kitti_fixture_gt_database_points_lie_in_the_read_box():
    """mmdet3d cut the 377 points of the pedestrian (info num_lidar_pts = 377) out of the real
    scan into its gt database, relative to its LiDAR box's bottom centre (dbinfo box3d_lidar)."""
    ds = info_dataset(FIX / "kitti" / "kitti_infos_train.pkl", FIX / "kitti", split="train", load_images=False)
    s = ds[0]
    db = load_pkl(FIX / "kitti" / "kitti_dbinfos_train.pkl")["Pedestrian"][0]
    pts = np.fromfile(FIX / "kitti" / "kitti_gt_database" / "0_Pedestrian_0.bin", np.float32).reshape(-1, 4)
    pts = pts[:, :3].astype(np.float64) + db["box3d_lidar"][:3]
    assert len(s.gt_boxes) == 1 and s.meta["box_meta"]["num_lidar_pts"][0] == 377 == len(pts)
    assert s.gt_boxes.points_in_boxes(pts).sum() == 377
    np.testing.assert_allclose(s.gt_boxes.bottom_center[0], db["box3d_lidar"][:3], atol=2e-3)
    np.testing.assert_allclose(s.gt_boxes.dims[0], db["box3d_lidar"][3:6], atol=1e-6)
    # mmdet3d sets yaw = -ry - pi/2; kd3d turns the heading with the calibration (0.0016 rad here)
    assert abs(limit_period(s.gt_boxes.yaw[0] - db["box3d_lidar"][6])) < 3e-3
    # the check discriminates: reading the sizes as l w h (not mmdet3d's camera l h w) loses points
    wrong = s.gt_boxes.data.copy()
    wrong[:, 4], wrong[:, 5] = s.gt_boxes.dims[:, 2], s.gt_boxes.dims[:, 1]
    wrong[:, 2] = s.gt_boxes.bottom_center[:, 2] + wrong[:, 5] / 2
    assert Boxes3D(wrong).points_in_boxes(pts).sum() < 377
    # the committed point file is the first 800 points of the scan (the top rings): none in the box
    assert s.gt_num_points[0] == 0 and len(s.points) == 800


def test_nuscenes_fixture_legacy_boxes_head_along_their_motion():
    """mmdet3d's nus_info.pkl stores pre-1.0 boxes (w l h, -yaw - pi/2); 'auto' finds that, and
    every moving elongated box then heads along (or against) its velocity."""
    root = FIX / "nuscenes"
    ds = info_dataset(root / "nus_info.pkl", root, load_images=False, sweeps=2)
    assert ds.info.box_convention == "legacy"
    assert ds.info.negated_translations  # written before mmdet3d's lidar2cam fix (#2110)
    wrong = info_dataset(root / "nus_info.pkl", root, load_images=False, sweeps=2, box_convention="lwh")
    for i in range(len(ds)):
        s = ds[i]
        d = s.gt_boxes.dims
        v = s.gt_boxes.velocity
        moving = (np.hypot(v[:, 0], v[:, 1]) > 1.0) & (d[:, 0] > 1.3 * d[:, 1])
        assert moving.sum() >= 1
        cross = lambda yaw: np.abs(np.sin(yaw[moving] - np.arctan2(v[moving, 1], v[moving, 0])))  # noqa: E731
        assert cross(s.gt_boxes.yaw).max() < 0.1
        assert cross(wrong[i].gt_boxes.yaw).max() > 0.5  # unconverted yaw: not along the motion
        assert (d[:, 0] >= d[:, 1]).mean() > 0.9
        # the committed key files are 100-point prefixes of the scans: counts can only be lower
        inside = s.gt_boxes.points_in_boxes(s.points[: s.num_key_points]).sum(axis=0)
        assert (inside <= s.gt_num_points).all()
        # cameras: cam2lidar ~ inv(lidar2ego) @ cam2ego (up to the ego motion between the camera
        # and LiDAR times; inv(lidar2cam) of this file is 0.5-1.2 m off, see negated_translations)
        info = ds.info.infos[i]
        l2e = np.asarray(info["lidar_points"]["lidar2ego"])
        for k, cam in enumerate(s.cam_names):
            approx = np.linalg.inv(l2e) @ np.asarray(info["images"][cam]["cam2ego"])
            np.testing.assert_allclose(s.cam2lidar[k][:3, :3], approx[:3, :3], atol=0.02)
            np.testing.assert_allclose(s.cam2lidar[k][:3, 3], approx[:3, 3], atol=0.02)
    s = ds[1]  # one sweep of 89 points (100 minus the roof square) 0.100079 s before the key frame
    info = ds.info.infos[1]
    assert info["timestamp"] - info["lidar_sweeps"][0]["timestamp"] == pytest.approx(0.100079, abs=1e-6)
    assert s.num_key_points == 100 and len(s.points) == 189
    np.testing.assert_allclose(s.points[100:, 4], 0.100079, atol=1e-6)


def _write(tmp_path, obj) -> Path:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    return path


def test_malformed_info_files_name_file_and_field(tmp_path, synth_nuscenes):
    root = synth_nuscenes["dataroot"]
    good = load_pkl(write_nuscenes_infos(root, synth_nuscenes["version"], tmp_path / "ok.pkl"))
    bad = {**good, "data_list": [dict(good["data_list"][0])]}
    bad["data_list"][0]["lidar_points"] = {k: v for k, v in good["data_list"][0]["lidar_points"].items()
                                           if k != "lidar_path"}
    path = _write(tmp_path, bad)
    with pytest.raises(ValueError, match=rf"{path}: info 0 field 'lidar_points.lidar_path': expected"):
        info_dataset(path, root)
    bad["data_list"][0] = {**good["data_list"][0], "ego2global": [[1, 0], [0, 1]]}
    with pytest.raises(ValueError, match=r"info 0 field 'ego2global': expected shape \(4, 4\), got .*\(2, 2\)"):
        info_dataset(_write(tmp_path, bad), root)
    sweep = dict(good["data_list"][0]["lidar_sweeps"][0])
    sweep["lidar_points"] = {**sweep["lidar_points"], "lidar_path": "nowhere.pcd.bin"}
    bad["data_list"][0] = {**good["data_list"][0], "lidar_sweeps": [sweep]}
    with pytest.raises(FileNotFoundError, match=r"info 0 field 'lidar_sweeps\[0\].lidar_points.lidar_path' = "
                                                r"'nowhere.pcd.bin': no file at"):
        info_dataset(_write(tmp_path, bad), root)[0]
    inst = {**good["data_list"][0]["instances"][0], "bbox_3d": [1.0, 2.0]}
    bad["data_list"][0] = {**good["data_list"][0], "instances": [inst]}
    with pytest.raises(ValueError, match=r"field 'instances\[0\].bbox_3d': expected 7 or 9 numbers"):
        info_dataset(_write(tmp_path, bad), root)
    old = load_pkl(write_nuscenes_infos(root, synth_nuscenes["version"], tmp_path / "old.pkl", layout="0.x"))
    cams = {k: dict(v) for k, v in old["infos"][0]["cams"].items()}
    del cams["CAM_BACK"]["data_path"]
    bad = {**old, "infos": [{**old["infos"][0], "cams": cams}]}
    with pytest.raises(ValueError, match=r"info 0 field 'cams.CAM_BACK.data_path': expected a value \(missing\)"):
        info_dataset(_write(tmp_path, bad), root)
    with pytest.raises(ValueError, match=r"bad.pkl: field 'metainfo.categories'"):
        read_infos(_write(tmp_path, {"data_list": [], "metainfo": {}}))
    with pytest.raises(ValueError, match=r"bad.pkl: expected an mmdet3d info file"):
        read_infos(_write(tmp_path, {"foo": 1}))
    # half the elongated boxes long side first: the size order is not decidable
    mixed = {"infos": [{"token": "t", "gt_boxes": np.array([[0, 0, 0, 4, 2, 1.5, 0], [0, 0, 0, 2, 4, 1.5, 0]])}],
             "metadata": {"version": "v1.0-mini"}}
    with pytest.raises(ValueError, match=r"cannot tell the box size order .*box_convention='lwh'"):
        read_infos(_write(tmp_path, mixed))
    assert read_infos(_write(tmp_path, mixed), box_convention="legacy").box_convention == "legacy"


def test_engine_builds_an_info_dataset(synth_nuscenes, tmp_path):
    from kd3d.engine.builders import build_dataset
    from kd3d.engine.config import ConfigError, DataConfig

    root = synth_nuscenes["dataroot"]
    write_nuscenes_infos(root, synth_nuscenes["version"], tmp_path / "nuscenes_infos_train.pkl")
    cfg = DataConfig(dataset="mmdet3d_infos", root=root, version="v1.0-trainval",
                     kwargs={"info_files": {"train": str(tmp_path / "nuscenes_infos_train.pkl")}, "sweeps": 2,
                             "load_images": False, "cameras": []},
                     train_kwargs={"transforms": [["PointShuffle", {}]]})
    ds = build_dataset(cfg, "train", train=True)
    assert isinstance(ds, NuScenesInfoDataset) and len(ds) == synth_nuscenes["samples"]
    assert ds.version == synth_nuscenes["version"]  # the file's metadata, for the devkit evaluator
    assert ds[0].points.shape[1] == 5 and ds[0].images is None
    with pytest.raises(ConfigError, match=r"info_files: no info file for split 'val'"):
        build_dataset(cfg, "val", train=False)


def test_nuscenes_evaluator_scores_an_info_dataset_like_the_loader(synth_nuscenes, tmp_path):
    """The devkit evaluator reads poses from the dataset's entries and GT from the tables: GT
    boxes submitted as predictions score the same on the info dataset as on NuScenesDataset."""
    from kd3d.engine.eval_adapters import nuscenes_det

    root, version = synth_nuscenes["dataroot"], synth_nuscenes["version"]
    path = write_nuscenes_infos(root, version, tmp_path / "infos.pkl", split="mini_val")
    metrics = []
    for ds in (info_dataset(path, root, split="mini_val", load_images=False, cameras=(), sweeps=1),
               NuScenesDataset(root, version, "mini_val", load_images=False, cameras=(), sweeps=1)):
        results = {}
        for i in range(len(ds)):
            s = ds[i]
            boxes = s.gt_boxes.data.copy()
            boxes[:, 7:] = np.nan_to_num(boxes[:, 7:])
            results[s.token] = {"boxes": Boxes3D(boxes), "scores": np.linspace(0.9, 0.5, len(boxes)),
                                "labels": s.gt_labels, "attrs": np.full(len(boxes), -1)}
        metrics.append(nuscenes_det(results, ds))
    assert metrics[0] == pytest.approx(metrics[1], abs=1e-9)  # kd3d's index stores 12 decimals
    assert metrics[0]["mAP"] > 0.5


def test_kitti_evaluator_scores_an_info_dataset_like_the_loader(synth_kitti, tmp_path):
    from kd3d.engine.eval_adapters import kitti_det

    root = synth_kitti["root"]
    path = write_kitti_infos(root, "val", tmp_path / "infos.pkl")
    metrics = []
    for ds in (info_dataset(path, root, split="val", load_images=False), KittiDataset(root, "val", load_images=False)):
        results = {}
        for i in range(len(ds)):
            s = ds[i]
            results[s.token] = {"boxes": s.gt_boxes, "scores": np.linspace(0.9, 0.5, len(s.gt_boxes)),
                                "labels": s.gt_labels, "attrs": np.full(len(s.gt_boxes), -1)}
        metrics.append(kitti_det(results, ds))
    assert metrics[0].keys() == metrics[1].keys()
    a, b = (np.array([m[k] for k in sorted(metrics[0])]) for m in metrics)
    np.testing.assert_allclose(a, b, atol=1e-6)  # NaN where a class has no GT at a level, in both
    assert np.isfinite(a).sum() > 10
