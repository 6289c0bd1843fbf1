"""KittiDataset on a tiny KITTI-layout dataset."""
import numpy as np
import pytest

from kd3d.data.kitti import KittiDataset, kitti_cam2lidar, kitti_difficulty
from kd3d.data.transforms import project_to_image
from tiny_datasets import write_tiny_kitti


@pytest.fixture(scope="session")
def kitti_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kitti")
    return root, write_tiny_kitti(root)


def test_frames_boxes_and_kitti_fields(kitti_root):
    root, truth = kitti_root
    ds = KittiDataset(root, "train")
    assert len(ds) == 2 and ds.tokens == ["000000", "000001"]
    s = ds[1]
    np.testing.assert_array_equal(s.points[:, :4], truth["points"]["000001"])
    assert (s.points[:, 4] == 0).all() and s.num_key_points == len(s.points)
    # Car, Pedestrian, Cyclist kept (Van, DontCare dropped), in the velodyne frame
    np.testing.assert_array_equal(s.gt_labels, [0, 1, 2])
    np.testing.assert_allclose(s.gt_boxes.data[:, :7], truth["boxes"]["000001"].data[:3, :7], atol=2e-3)
    assert np.isnan(s.gt_boxes.velocity).all()
    bm = s.meta["box_meta"]
    np.testing.assert_array_equal(bm["name"], ["Car", "Pedestrian", "Cyclist"])
    np.testing.assert_array_equal(bm["occlusion"], [0, 1, 2])
    np.testing.assert_allclose(bm["truncation"], [0.0, 0.2, 0.4])
    np.testing.assert_array_equal(bm["difficulty"], [0, 1, 2])  # easy / moderate / hard by the devkit rules
    assert bm["bbox"].shape == (3, 4) and (bm["bbox"][:, 3] > bm["bbox"][:, 1]).all()
    np.testing.assert_array_equal(s.gt_num_points, [40, 40, 40])
    assert s.images.shape == (1, 200, 400, 3) and s.meta["image_shape"] == (200, 400)


def test_camera_matches_p2_projection(kitti_root):
    root, truth = kitti_root
    s = KittiDataset(root, "val")[0]
    calib = s.meta["calib"]
    pts = s.points[:, :3][s.points[:, 0] > 3]
    uv_calib, depth = calib.velo_to_image(pts)
    uv, z = project_to_image(pts, s.cam2lidar[0], s.cam_intrinsics[0], s.img_aug[0])
    np.testing.assert_allclose(uv, uv_calib, atol=1e-6)
    np.testing.assert_allclose(z, depth, atol=1e-9)  # camera-2 depth = rectified z + P2 baseline z
    k, c2l = kitti_cam2lidar(calib)
    np.testing.assert_allclose(c2l[:3, :3] @ c2l[:3, :3].T, np.eye(3), atol=1e-9)  # rigid
    np.testing.assert_allclose(k, calib.P2[:, :3])


def test_difficulty_thresholds():
    # the devkit's rule: height strictly above 40 (easy) / 25 (moderate, hard); <= min is ignored
    h = [40.01, 40, 39.9, 25.01, 25.01, 25, 25.01, 24.9, 60]
    occ = [0, 0, 0, 1, 2, 0, 2, 0, 3]
    trunc = [0.15, 0.0, 0.0, 0.3, 0.5, 0.0, 0.51, 0.0, 0.0]
    np.testing.assert_array_equal(kitti_difficulty(h, occ, trunc), [0, 1, 1, 1, 2, -1, -1, -1, -1])


def test_kitti_errors(kitti_root, tmp_path):
    root, _ = kitti_root
    with pytest.raises(ValueError, match="unknown KITTI split 'training'"):
        KittiDataset(root, "training")
    with pytest.raises(FileNotFoundError, match="split file not found: .*test.txt"):
        KittiDataset(root, "test")
    with pytest.raises(FileNotFoundError, match="KITTI root not found"):
        KittiDataset(tmp_path / "none", "train")
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    vel = bad / "training" / "velodyne" / "000000.bin"
    vel.write_bytes(vel.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"000000\.bin: .* not a multiple of 4 float32"):
        KittiDataset(bad, "train")[0]
    (bad / "training" / "label_2" / "000001.txt").write_text("Car 0 0 0 1 2 3\n")
    with pytest.raises(ValueError, match=r"000001\.txt:1: expected 15 or 16 fields"):
        KittiDataset(bad, "train", load_images=False)[1]


def test_synth_kitti_boxes_project_onto_label_bbox(synth_kitti):
    """kd3d's synthetic KITTI (session fixture of conftest.py): label bboxes = projected boxes."""
    ds = KittiDataset(synth_kitti["root"], "val")
    s = ds[0]
    h, w = s.images.shape[1:3]
    assert len(s.gt_boxes) > 3
    uv, z = project_to_image(s.gt_boxes.corners().reshape(-1, 3), s.cam2lidar[0], s.cam_intrinsics[0])
    uv, z = uv.reshape(-1, 8, 2), z.reshape(-1, 8)
    front = (z > 0).all(1)
    bb = np.concatenate([uv.min(1), uv.max(1)], 1)
    bb[:, [0, 2]] = bb[:, [0, 2]].clip(0, w - 1)
    bb[:, [1, 3]] = bb[:, [1, 3]].clip(0, h - 1)
    # labels carry 2-decimal dims/locations: up to ~0.5 px at close range
    np.testing.assert_allclose(bb[front], s.meta["box_meta"]["bbox"][front], atol=1.0)


def test_testing_split_without_labels(kitti_root, tmp_path):
    import shutil

    root = tmp_path / "k"
    shutil.copytree(kitti_root[0], root)
    for sub in ("velodyne", "calib", "image_2"):
        shutil.copytree(root / "training" / sub, root / "testing" / sub)
    (root / "ImageSets" / "test.txt").write_text("000002\n")
    s = KittiDataset(root, "test", load_images=False)[0]
    assert len(s.gt_boxes) == 0 and s.gt_labels.shape == (0,) and s.meta["box_meta"]["bbox"].shape == (0, 4)
    assert s.meta["image_shape"] == (200, 400) and len(s.points) == 560


def test_40px_box_is_not_easy(kitti_root, tmp_path):
    """A box exactly 40.00 px tall is moderate (the devkit ignores it at easy), 40.01 px is easy."""
    import shutil

    root, _ = kitti_root
    case = tmp_path / "case"
    shutil.copytree(root, case)
    line = "Car 0.00 0 0.1 100.00 100.00 200.00 {y2} 1.5 1.7 4.0 1.0 1.6 12.0 0.2\n"
    (case / "training" / "label_2" / "000000.txt").write_text(line.format(y2="140.00") + line.format(y2="140.01"))
    meta = KittiDataset(case, "train", load_images=False)[0].meta["box_meta"]
    np.testing.assert_array_equal(meta["difficulty"], [1, 0])
