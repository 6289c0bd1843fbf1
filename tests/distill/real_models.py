"""kd3d's real models (LiDAR voxel/pillar CenterPoint, camera LSS student, fusion, sparse-UNet
segmenter) at toy size over +-8 m, and a deterministic batch for them (seeded)."""
from __future__ import annotations

import numpy as np
import torch

from kd3d.models.camera.rig import ring_rig, scale_crop_aug
from kd3d.structures.sample import Batch

IMAGE = (32, 64)
RANGE = (-8.0, -8.0, -5.0, 8.0, 8.0, 3.0)
CLASSES = ("car", "pedestrian")
TASKS = (("car",), ("pedestrian",))
TINY_CAMERA = dict(image_size=IMAGE, depth_bins=(1.0, 13.0, 1.0), resnet_depth=10, resnet_width=8, fpn_channels=16,
                   depth_mid_channels=16, context_channels=8)


class _S:
    def __init__(self, token, key):
        self.token, self.num_key_points = token, key


def real_batch(seed: int = 0, batch_size: int = 2, num_cams: int = 2) -> Batch:
    """Two boxes per sample with surface points, ground points, random images, ring cameras."""
    gen = np.random.default_rng(seed)
    intr, c2l = ring_rig(num_cams, IMAGE, hfov_deg=100.0)
    boxes, labels, points, plabels, samples = [], [], [], [], []
    for b in range(batch_size):
        bx = np.array([[3.5 + b, 1.0, -0.8, 4.2, 1.9, 1.6, 0.3, 1.0, 0.0],
                       [-4.0, -2.5 + b, -0.9, 0.7, 0.7, 1.8, 0.0, 0.0, 0.0]])
        boxes.append(torch.tensor(bx, dtype=torch.float32))
        labels.append(torch.tensor([0, 1]))
        surf = np.concatenate([bx[i, :3] + gen.uniform(-0.4, 0.4, (60, 3)) for i in range(2)])
        ground = np.column_stack([gen.uniform(-7.9, 7.9, (200, 2)), np.full(200, -1.7)])
        xyz = np.concatenate([surf, ground])
        pts = np.column_stack([xyz, gen.uniform(0, 1, len(xyz)), np.zeros(len(xyz))])
        points.append(torch.tensor(pts, dtype=torch.float32))
        plabels.append(torch.tensor(np.r_[np.full(60, 17 - 16), np.full(60, 2), np.full(200, 11)], dtype=torch.int64))
        samples.append(_S(f"real{seed}_{b}", len(xyz)))
    aug = np.stack([scale_crop_aug(1.0 + 0.1 * i) for i in range(num_cams)])
    rep = lambda a: torch.tensor(np.repeat(a[None], batch_size, 0), dtype=torch.float32)  # noqa: E731
    return Batch(points=points, points_label=plabels, gt_boxes=boxes, gt_labels=labels,
                 gt_attrs=[torch.full((2,), -1) for _ in range(batch_size)],
                 images=torch.randn(batch_size, num_cams, 3, *IMAGE, generator=torch.Generator().manual_seed(seed)),
                 cam_intrinsics=rep(intr), cam2lidar=rep(c2l), img_aug=rep(aug),
                 bev_aug=torch.eye(4).repeat(batch_size, 1, 1), samples=samples)


def lidar_voxel(width: float = 0.25, seed: int = 0):
    from kd3d.models.lidar.presets import centerpoint_voxel

    torch.manual_seed(seed)
    return centerpoint_voxel(scale="synthetic", width=width, class_names=CLASSES, point_range=RANGE,
                             voxel_size=(0.25, 0.25, 0.25), layer_nums=(1, 1), max_voxels=4000)


def lidar_pillar(width: float = 0.25, seed: int = 0):
    from kd3d.models.lidar.presets import centerpoint_pillar

    torch.manual_seed(seed)
    return centerpoint_pillar(scale="synthetic", width=width, class_names=CLASSES, point_range=RANGE,
                              pillar_size=(0.25, 0.25), layer_nums=(1, 1, 1), max_pillars=4000)


def camera(seed: int = 0, grid=None):
    from kd3d.models.camera.student import build_camera_bev

    torch.manual_seed(seed)
    grid = grid if grid is not None else lidar_voxel().bev_grid
    return build_camera_bev(tasks=TASKS, class_names=CLASSES, grid=grid, z_range=(-5.0, 3.0), bev_channels=(8, 16),
                            bev_blocks=(1, 1), bev_strides=(1, 2), neck_channels=16, head_channels=8,
                            depth_loss_weight=0.0, **TINY_CAMERA)


def fusion(seed: int = 0):
    from kd3d.models.fusion import fusion_centerpoint

    torch.manual_seed(seed)
    return fusion_centerpoint(scale="synthetic", width=0.125, class_names=CLASSES, point_range=RANGE,
                              voxel_size=(0.25, 0.25, 0.25), layer_nums=(1, 1), max_voxels=4000,
                              camera=TINY_CAMERA, depth_loss_weight=0.0)


def segmenter(width: float = 0.25, seed: int = 0):
    from kd3d.models.seg.segmenter import sparse_unet_seg

    torch.manual_seed(seed)
    return sparse_unet_seg(scale="synthetic", width=width, point_range=RANGE, voxel_size=0.25,
                           base_channels=(16, 32))
