"""The synthetic KITTI object dataset: labels agree with the simulated scene and the sensors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from synth_params import SYNTH_KITTI

from kd3d.data.synth.kitti_writer import kitti_frame, kitti_type
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.calib import KittiCalib
from kd3d.structures.classes import KITTI_ALL_CLASSES


def _read_labels(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_layout(synth_kitti):
    root = Path(synth_kitti["root"])
    n = SYNTH_KITTI["frames"]
    for sub, ext in (("velodyne", "bin"), ("image_2", "png"), ("calib", "txt"), ("label_2", "txt")):
        assert sorted(p.name for p in (root / "training" / sub).iterdir()) == [f"{i:06d}.{ext}" for i in range(n)]
    train = (root / "ImageSets" / "train.txt").read_text().split()
    val = (root / "ImageSets" / "val.txt").read_text().split()
    assert train and val and sorted(train + val) == [f"{i:06d}" for i in range(n)]
    from PIL import Image

    w, h = SYNTH_KITTI["image_size"]
    assert Image.open(root / "training" / "image_2" / "000000.png").size == (w, h)
    pts = np.fromfile(root / "training" / "velodyne" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    assert pts.shape[0] > 20000 and 0.0 <= pts[:, 3].min() and pts[:, 3].max() <= 1.0
    # the ground 1.73 m below the sensor is the most common height
    hist, edges = np.histogram(pts[:, 2], bins=np.arange(-3, 3, 0.1))
    assert abs(edges[np.argmax(hist)] + 1.73) < 0.15


def test_labels_match_scene_boxes(synth_kitti):
    root = Path(synth_kitti["root"])
    w, h = SYNTH_KITTI["image_size"]
    n_obj = n_with_points = 0
    types = set()
    for i in range(SYNTH_KITTI["frames"]):
        name = f"{i:06d}"
        calib = KittiCalib.from_file(root / "training" / "calib" / f"{name}.txt")
        labels = [x for x in _read_labels(root / "training" / "label_2" / f"{name}.txt")]
        pts = np.fromfile(root / "training" / "velodyne" / f"{name}.bin", dtype=np.float32).reshape(-1, 4)
        scene, t, velo2global = kitti_frame(SYNTH_KITTI["seed"], i)
        truth = Boxes3D(scene.object_boxes(t)).transform(np.linalg.inv(velo2global))
        for lab in labels:
            assert lab[0] in KITTI_ALL_CLASSES and len(lab) == 15
            types.add(lab[0])
            if lab[0] == "DontCare":
                continue
            vals = np.array(lab[1:], dtype=np.float64)
            trunc, occ, bbox = vals[0], int(vals[1]), vals[3:7]
            assert 0.0 <= trunc <= 1.0 and occ in (0, 1, 2)
            box = Boxes3D.from_kitti(vals[10:13][None], vals[7:10][None], vals[13:14], calib)
            # the label is one of the scene's boxes, in the Velodyne frame
            j = int(np.argmin(np.linalg.norm(truth.center - box.center, axis=1)))
            assert np.allclose(truth.center[j], box.center[0], atol=0.02)
            assert np.allclose(truth.dims[j], box.dims[0], atol=0.01)
            dyaw = (truth.yaw[j] - box.yaw[0] + np.pi) % (2 * np.pi) - np.pi
            assert abs(dyaw) < 0.01
            assert kitti_type(scene.objects[j]) == lab[0]
            # the 2D box is the clipped projection of the 3D box
            corners = truth[j].corners().reshape(-1, 3)
            uv, depth = calib.velo_to_image(corners)
            if np.all(depth > 0.1):
                ref = [max(uv[:, 0].min(), 0), max(uv[:, 1].min(), 0), min(uv[:, 0].max(), w - 1),
                       min(uv[:, 1].max(), h - 1)]
                assert np.allclose(bbox, ref, atol=0.02)
            assert 0 <= bbox[0] <= bbox[2] <= w - 1 and 0 <= bbox[1] <= bbox[3] <= h - 1
            inside = truth[j].points_in_boxes(pts[:, :3])[:, 0].sum()
            n_obj += 1
            if occ == 0 and trunc < 0.3 and vals[12] < 40:
                assert inside > 0, f"{name}: visible {lab[0]} at {vals[10:13]} has no LiDAR points"
            n_with_points += inside > 0
    assert n_obj > 10 and n_with_points > n_obj / 3
    assert {"Car", "Pedestrian"} <= types


def test_kitti_deterministic(tmp_path):
    from kd3d.data.synth import generate_kitti

    kw = dict(frames=1, image_size=(64, 32), progress=False)
    a = generate_kitti(tmp_path / "a", seed=4, **kw)
    b = generate_kitti(tmp_path / "b", seed=4, **kw)
    for rel in ("training/velodyne/000000.bin", "training/label_2/000000.txt", "training/image_2/000000.png"):
        assert (Path(a["root"]) / rel).read_bytes() == (Path(b["root"]) / rel).read_bytes()
    with pytest.raises(ValueError, match="frames"):
        generate_kitti(tmp_path / "c", frames=0)
