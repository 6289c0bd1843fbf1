"""Hand-made samples for the visualisation tests (small, deterministic)."""
from __future__ import annotations

import numpy as np
import pytest

from kd3d.structures import Boxes3D
from kd3d.structures.sample import Sample

CAMS = ("CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT")
CAM_YAWS = (0.0, -55.0, 55.0, 180.0, 110.0, -110.0)  # degrees, LiDAR frame (x forward, y left)
IMG_W, IMG_H = 160, 96


def cam2lidar_for(yaw_deg: float, height: float = 0.0) -> np.ndarray:
    """Camera (x right, y down, z forward) -> LiDAR (x forward, y left, z up), looking along yaw."""
    a = np.radians(yaw_deg)
    fwd = np.array([np.cos(a), np.sin(a), 0.0])
    right = np.array([np.sin(a), -np.cos(a), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    m = np.eye(4)
    m[:3, :3] = np.stack([right, down, fwd], axis=1)
    m[:3, 3] = [0.0, 0.0, height]
    return m


def make_sample(seed: int = 0, with_images: bool = True) -> Sample:
    rng = np.random.default_rng(seed)
    # ground: a 40 x 40 m patch at z = -1.8, intensity rising with x, two sweeps
    g = rng.uniform(-20, 20, size=(3000, 2))
    ground = np.column_stack([g, np.full(len(g), -1.8), (g[:, 0] + 20) / 40, np.zeros(len(g))])
    boxes = Boxes3D(np.array([
        [10.0, 0.0, -0.9, 4.0, 2.0, 1.8, 0.0, 1.0, 0.0],          # car ahead, facing +x
        [-8.0, 6.0, -0.9, 0.8, 0.8, 1.8, np.pi / 2, 0.0, 0.0],  # pedestrian behind-left
    ]))
    inside = []
    for b in boxes.data:
        local = rng.uniform(-0.5, 0.5, size=(300, 3)) * b[3:6]
        c, s = np.cos(b[6]), np.sin(b[6])
        xy = local[:, :2] @ np.array([[c, s], [-s, c]])
        pts = np.column_stack([xy + b[:2], local[:, 2] + b[2], np.full(300, 0.9), np.zeros(300)])
        inside.append(pts)
    key = np.concatenate([ground] + inside).astype(np.float32)
    sweep = key[:500].copy()
    sweep[:, 4] = 0.45
    points = np.concatenate([key, sweep]).astype(np.float32)
    labels = np.concatenate([np.full(len(ground), 11), np.full(300, 4), np.full(300, 7)]).astype(np.int64)
    kw = {}
    if with_images:
        k = np.array([[80.0, 0, IMG_W / 2], [0, 80.0, IMG_H / 2], [0, 0, 1]])
        kw = dict(
            images=np.full((6, IMG_H, IMG_W, 3), 90, dtype=np.uint8), cam_names=list(CAMS),
            cam_intrinsics=np.stack([k] * 6), cam2lidar=np.stack([cam2lidar_for(y) for y in CAM_YAWS]),
            img_aug=np.stack([np.eye(3)] * 6),
        )
    return Sample(
        token=f"tok{seed}", points=points, num_key_points=len(key), gt_boxes=boxes,
        gt_labels=np.array([0, 5]), gt_attrs=np.array([2, 7]), gt_num_points=np.array([300, 300]),
        points_label=labels, **kw,
    ).validate()


@pytest.fixture
def sample() -> Sample:
    return make_sample()


@pytest.fixture
def preds() -> dict:
    """One good detection of the car (shifted by 0.5 m) and one false positive."""
    return {
        "boxes": Boxes3D(np.array([[10.5, 0.3, -0.9, 4.2, 1.9, 1.7, 0.1, 1.0, 0.0],
                                   [0.0, -12.0, -0.9, 4.0, 2.0, 1.8, 0.0, 0.0, 0.0]])),
        "scores": np.array([0.9, 0.3]),
        "labels": np.array([0, 1]),
    }


@pytest.fixture(scope="session")
def vis_nusc(tmp_path_factory) -> dict:
    """A 1-scene x 2-sample synthetic nuScenes dataset in the real format (kd3d.data.synth)."""
    from kd3d.data.synth import generate_nuscenes

    return generate_nuscenes(tmp_path_factory.mktemp("vis_nusc"), scenes=1, samples_per_scene=2, seed=1,
                             image_size=(192, 108), sweeps=2, progress=False)


@pytest.fixture(scope="session")
def vis_kitti(tmp_path_factory) -> dict:
    """A 2-frame synthetic KITTI object dataset (kd3d.data.synth)."""
    from kd3d.data.synth import generate_kitti

    return generate_kitti(tmp_path_factory.mktemp("vis_kitti"), frames=2, seed=0, image_size=(414, 125),
                          progress=False)
