"""NuScenesDataset on a tiny real-format dataset, cross-checked against the nuScenes devkit."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from kd3d.data.nuscenes import NUSC_CAMERAS, NuScenesDataset
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES, NUSC_LIDARSEG_FINE_TO_COARSE
from kd3d.structures.sample import collate
from tiny_datasets import ego_pose, lidar2ego, write_tiny_nuscenes

V = "v1.0-mini"


@pytest.fixture(scope="session")
def nusc_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("nusc")
    truth = write_tiny_nuscenes(root)
    return root, truth


@pytest.fixture(scope="session")
def nusc(nusc_root):
    from nuscenes import NuScenes

    return NuScenes(V, str(nusc_root[0]), verbose=False)


@pytest.fixture(scope="session")
def ds_all(nusc_root):
    return NuScenesDataset(nusc_root[0], V, "all", sweeps=10)


def _key_lidar_world(truth, scene, t):
    si = truth["scenes"][scene]["index"]
    m = np.linalg.inv(ego_pose(si, t) @ lidar2ego())
    return truth["world"][:, :3] @ m[:3, :3].T + m[:3, 3]


def test_splits_and_lengths(nusc_root):
    root, truth = nusc_root
    tr = NuScenesDataset(root, V, "mini_train", load_images=False)
    va = NuScenesDataset(root, V, "mini_val", load_images=False)
    assert len(tr) == len(va) == 3
    assert tr.tokens == truth["scenes"]["scene-0061"]["sample_tokens"]
    assert {s.meta["scene"] for s in (tr[0], va[0])} == {"scene-0061", "scene-0103"}
    with pytest.raises(ValueError, match="unknown nuScenes split 'bogus'"):
        NuScenesDataset(root, V, "bogus")
    with pytest.raises(ValueError, match="split 'test' has no samples"):
        NuScenesDataset(root, V, "test")


def test_sweeps_are_ego_motion_compensated(ds_all, nusc_root):
    _, truth = nusc_root
    for idx in (0, 2, 4):
        s = ds_all[idx]
        scene = s.meta["scene"]
        t_key = s.timestamp - ds_all[3 * (idx // 3)].timestamp + truth["scenes"][scene]["key_times"][0]
        expected = _key_lidar_world(truth, scene, t_key)
        assert s.num_key_points == 300
        np.testing.assert_allclose(s.points[:300, :3], expected, atol=2e-3)
        np.testing.assert_allclose(s.points[:300, 3], truth["world"][:, 3], atol=1e-4)
        # every sweep point is a world point seen from the key-frame LiDAR frame
        d = np.linalg.norm(s.points[300:, None, :3] - expected[None], axis=-1).min(axis=1)
        assert d.max() < 5e-3
        dts = np.unique(np.round(s.points[:, 4], 3))
        assert dts[0] == 0 and (np.diff(dts) > 0).all() and len(dts) == min(10, 2 + 5 * (idx % 3) + 1)
        assert np.isfinite(s.points).all()
        np.testing.assert_array_equal(s.points_label, np.asarray(NUSC_LIDARSEG_FINE_TO_COARSE)[truth["world_label"]])


def _assert_same_sweeps(ours, ref):
    """Same points per sweep (grouped by dt), each sweep in file order like the devkit."""
    dts = np.unique(np.round(ref[:, 4], 4))
    np.testing.assert_allclose(np.unique(np.round(ours[:, 4], 4)), dts, atol=1e-4)
    for dt in dts:
        a, b = ours[np.abs(ours[:, 4] - dt) < 1e-4], ref[np.abs(ref[:, 4] - dt) < 1e-4]
        np.testing.assert_allclose(a, b, atol=1e-3)


def test_multisweep_matches_devkit(ds_all, nusc):
    from nuscenes.utils.data_classes import LidarPointCloud

    for idx in (1, 5):
        s = ds_all[idx]
        rec = nusc.get("sample", s.token)
        pc, times = LidarPointCloud.from_file_multisweep(nusc, rec, "LIDAR_TOP", "LIDAR_TOP", nsweeps=10)
        ref = np.concatenate([pc.points.T, times.T], axis=1)
        ref = ref[np.isfinite(ref).all(1)]
        key = s.points[: s.num_key_points]
        key = key[~((np.abs(key[:, 0]) < 1) & (np.abs(key[:, 1]) < 1))]  # devkit also drops close key points
        ours = np.concatenate([key, s.points[s.num_key_points:]])
        assert ours.shape == ref.shape
        _assert_same_sweeps(ours, ref)


def test_boxes_match_devkit(ds_all, nusc):
    from pyquaternion import Quaternion

    for idx in range(len(ds_all)):
        s = ds_all[idx]
        assert len(s.gt_boxes) == 2  # car + pedestrian; the animal has no detection class
        _, boxes, _ = nusc.get_sample_data(nusc.get("sample", s.token)["data"]["LIDAR_TOP"])
        by_tok = {b.token: b for b in boxes}
        for k, tok in enumerate(s.meta["box_meta"]["ann_token"]):
            b = by_tok[tok]
            np.testing.assert_allclose(s.gt_boxes.center[k], b.center, atol=1e-6)
            np.testing.assert_allclose(s.gt_boxes.dims[k], b.wlh[[1, 0, 2]], atol=1e-9)
            yaw = b.orientation.yaw_pitch_roll[0]
            assert abs(np.angle(np.exp(1j * (s.gt_boxes.yaw[k] - yaw)))) < 1e-6
            v_glob = nusc.box_velocity(tok)
            sd = nusc.get("sample_data", nusc.get("sample", s.token)["data"]["LIDAR_TOP"])
            r = (Quaternion(nusc.get("ego_pose", sd["ego_pose_token"])["rotation"]).rotation_matrix
                 @ Quaternion(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"])["rotation"]).rotation_matrix)
            np.testing.assert_allclose(s.gt_boxes.velocity[k], (r.T @ np.append(v_glob[:2], 0))[:2], atol=1e-6)
        car = list(s.gt_labels).index(NUSC_DET_CLASSES.index("car"))
        assert s.gt_attrs[car] == NUSC_ATTRIBUTES.index("vehicle.moving")
        assert np.linalg.norm(s.gt_boxes.velocity[car]) > 3  # the car accelerates from 3 m/s
        np.testing.assert_array_equal(s.gt_num_points, [3 + idx % 3] * 2)


def test_cameras_project_world_points(ds_all, nusc_root):
    _, truth = nusc_root
    s = ds_all[4]
    scene = s.meta["scene"]
    si = truth["scenes"][scene]["index"]
    t_key = truth["scenes"][scene]["key_times"][1]
    p_lidar = _key_lidar_world(truth, scene, t_key)
    assert s.images.shape == (6, 36, 64, 3) and s.cam_names == list(NUSC_CAMERAS)
    from tiny_datasets import CAMS, cam2ego

    for c, chan in enumerate(s.cam_names):
        t_cam = t_key + 0.008 * (list(CAMS).index(chan) + 1)
        w2c = np.linalg.inv(ego_pose(si, t_cam) @ cam2ego(chan))
        pc_true = truth["world"][:, :3] @ w2c[:3, :3].T + w2c[:3, 3]
        l2c = np.linalg.inv(s.cam2lidar[c])
        pc = p_lidar @ l2c[:3, :3].T + l2c[:3, 3]
        np.testing.assert_allclose(pc, pc_true, atol=2e-3)
        np.testing.assert_allclose(s.cam_intrinsics[c], [[30, 0, 32], [0, 30, 18], [0, 0, 1]])
    np.testing.assert_allclose(s.img_aug, np.tile(np.eye(3), (6, 1, 1)))
    np.testing.assert_allclose(s.ego2global @ s.lidar2ego, ego_pose(si, t_key) @ lidar2ego(), atol=1e-9)


def _copy(nusc_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(nusc_root[0], root)
    return root


def test_bad_inputs_give_clear_errors(nusc_root, tmp_path):
    root, _ = nusc_root
    with pytest.raises(FileNotFoundError, match="dataroot not found"):
        NuScenesDataset(tmp_path / "nope", V, "all")
    with pytest.raises(FileNotFoundError, match="v1.0-trainval.*found.*v1.0-mini"):
        NuScenesDataset(root, "v1.0-trainval", "all")
    bad = _copy(nusc_root, tmp_path)
    ds = NuScenesDataset(bad, V, "mini_train", sweeps=1)
    lidar = bad / ds.entry(0)["lidar"]["path"]
    lidar.write_bytes(lidar.read_bytes()[:-8])
    with pytest.raises(ValueError, match=r"pcd\.bin: \d+ bytes is not a multiple of 5 float32"):
        ds[0]
    (bad / ds.entry(1)["cams"]["CAM_BACK"]["path"]).unlink()
    with pytest.raises(FileNotFoundError, match="camera image not found: .*CAM_BACK"):
        ds[1]
    (bad / ds.entry(2)["cams"]["CAM_FRONT"]["path"]).write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="unreadable image"):
        ds[2]
    (bad / V / "sample.json").unlink()
    with pytest.raises(FileNotFoundError, match="table missing: .*sample.json"):
        NuScenesDataset(bad, V, "all")
    with pytest.raises(ValueError, match="class_names"):
        NuScenesDataset(root, V, "all", class_names=("car", "tank"))


def test_empty_point_cloud_is_a_valid_sample(nusc_root, tmp_path):
    root = _copy(nusc_root, tmp_path)
    ds = NuScenesDataset(root, V, "mini_train", sweeps=1, load_lidarseg=False, load_images=False)
    (root / ds.entry(0)["lidar"]["path"]).write_bytes(b"")
    s = ds[0]
    assert s.points.shape == (0, 5) and s.num_key_points == 0 and len(s.gt_boxes) == 2
    with pytest.raises(ValueError, match="0 labels|labels for 0 points"):
        NuScenesDataset(root, V, "mini_train", sweeps=1, load_images=False)[0]
    # a NaN / inf key-frame point is dropped together with its lidarseg label
    ds = NuScenesDataset(root, V, "mini_train", sweeps=1, load_images=False)
    path = root / ds.entry(1)["lidar"]["path"]
    raw = np.fromfile(path, np.float32).reshape(-1, 5)
    raw[5, 0], raw[7, 3] = np.nan, np.inf
    raw.tofile(path)
    s = ds[1]
    keep = np.setdiff1d(np.arange(300), [5, 7])
    assert s.num_key_points == 298 and np.isfinite(s.points).all()
    np.testing.assert_array_equal(s.points[:, :4], raw[keep, :4])
    np.testing.assert_array_equal(s.points_label, np.asarray(NUSC_LIDARSEG_FINE_TO_COARSE)[nusc_root[1]["world_label"][keep]])


def test_options_sweeps_cameras_lidarseg(nusc_root):
    root, _ = nusc_root
    ds = NuScenesDataset(root, V, "mini_val", sweeps=3, cameras=("CAM_BACK", "CAM_FRONT"), load_images=False,
                         load_lidarseg=False, class_names=("pedestrian",))
    s = ds[2]
    assert s.images is None and s.points_label is None and s.cam2lidar.shape == (2, 4, 4)
    assert len(np.unique(s.points[:, 4])) == 3
    assert list(s.gt_labels) == [0] and s.meta["box_meta"]["category"][0] == "human.pedestrian.adult"
    with pytest.raises(ValueError, match="camera 'CAM_X'"):
        NuScenesDataset(root, V, "mini_val", cameras=("CAM_X",))


def test_dataloader_workers_collate(ds_all):
    import torch

    from kd3d.data.transforms import Compose, GlobalRotScaleTrans, PointRangeFilter, seed_worker

    ds = NuScenesDataset(ds_all.dataroot, V, "all", sweeps=2,
                         transforms=Compose([GlobalRotScaleTrans(seed=0), PointRangeFilter([-60, -60, -5, 60, 60, 5])]))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate,
                                         worker_init_fn=seed_worker, shuffle=False)
    batches = list(loader)
    assert len(batches) == 3
    b = batches[0]
    assert b.images.shape == (2, 6, 3, 36, 64) and b.cam2lidar.shape == (2, 6, 4, 4)
    assert b.points[0].shape[1] == 5 and b.points[0].dtype == torch.float32
    augs = torch.stack([x for bb in batches for x in bb.bev_aug])
    assert len({tuple(np.round(a.numpy().ravel(), 5)) for a in augs}) == 6  # workers draw distinct augmentations


# ---------------------------------------------------------------- kd3d's synthetic generator
# uses the session fixture ``synth_nuscenes`` of tests/data/conftest.py (2 scenes x 3 samples)
def test_synth_nuscenes_matches_devkit(synth_nuscenes):
    synth_root = synth_nuscenes["dataroot"]
    from nuscenes import NuScenes
    from nuscenes.utils.data_classes import LidarPointCloud

    from kd3d.structures.classes import NUSC_LIDARSEG_CLASSES

    nusc = NuScenes(V, str(synth_root), verbose=False)
    ds = NuScenesDataset(synth_root, V, "all", sweeps=10)
    assert len(ds) == 6
    coarse_name = dict(zip(NUSC_LIDARSEG_CLASSES, range(len(NUSC_LIDARSEG_CLASSES))))
    from kd3d.structures.classes import _FINE_TO_COARSE_NAME

    for idx in (0, 4):
        s = ds[idx]
        rec = nusc.get("sample", s.token)
        pc, times = LidarPointCloud.from_file_multisweep(nusc, rec, "LIDAR_TOP", "LIDAR_TOP", nsweeps=10)
        ref = np.concatenate([pc.points.T, times.T], axis=1)
        key = s.points[: s.num_key_points]
        key = key[~((np.abs(key[:, 0]) < 1) & (np.abs(key[:, 1]) < 1))]
        ours = np.concatenate([key, s.points[s.num_key_points:]])
        assert ours.shape == ref.shape and len(np.unique(s.points[:, 4])) > 1
        _assert_same_sweeps(ours, ref)
        _, boxes, _ = nusc.get_sample_data(rec["data"]["LIDAR_TOP"])
        by_tok = {b.token: b for b in boxes}
        assert len(s.gt_boxes) > 5
        for k, tok in enumerate(s.meta["box_meta"]["ann_token"]):
            np.testing.assert_allclose(s.gt_boxes.center[k], by_tok[tok].center, atol=1e-6)
            assert abs(np.angle(np.exp(1j * (s.gt_boxes.yaw[k] - by_tok[tok].orientation.yaw_pitch_roll[0])))) < 1e-6
        # lidarseg through the devkit's own index -> name table
        seg_file = Path(synth_root) / nusc.get("lidarseg", [r["token"] for r in nusc.lidarseg
                                                     if r["sample_data_token"] == rec["data"]["LIDAR_TOP"]][0])["filename"]
        raw = np.fromfile(seg_file, np.uint8)
        want = [coarse_name[_FINE_TO_COARSE_NAME.get(nusc.lidarseg_idx2name_mapping[i], "ignore")] for i in raw]
        np.testing.assert_array_equal(s.points_label, want)
        assert len(np.unique(s.points_label)) > 5

