"""Camera BEV student presets.

* :func:`camera_bev_nuscenes`: BEVDepth-R50-like; 6 cameras at 256 x 704, 59 depth bins over
  1..60 m, BEV 128 x 128 at 0.8 m over +-51.2 m (the CenterPoint voxel teacher's head grid:
  0.1 m voxels x stride 8).
* :func:`camera_bev_synthetic`: the same architecture shrunk to train on a 2-core CPU in
  minutes (ResNet-10 at width 16, 30 depth bins of 2 m, thin BEV encoder). Its head grid is a
  parameter and defaults to +-51.2 m at 0.8 m; pass the LiDAR teacher's head grid so both
  maps coincide.

Every keyword of :func:`kd3d.models.camera.student.build_camera_bev` can be overridden.
"""
from __future__ import annotations

from kd3d.models.camera.student import CameraBEVDet, build_camera_bev
from kd3d.structures.bev import BEVGrid
from kd3d.structures.classes import NUSC_DET_CLASSES

# CenterPoint's nuScenes task grouping (one heatmap branch set per group)
NUSC_TASKS: tuple[tuple[str, ...], ...] = (
    ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
    ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone"),
)

NUSC_BEV_GRID = BEVGrid(-51.2, -51.2, 51.2, 51.2, 0.8, 0.8)


def camera_bev_nuscenes(**overrides) -> CameraBEVDet:
    cfg = dict(
        tasks=NUSC_TASKS, class_names=NUSC_DET_CLASSES, image_size=(256, 704), grid=NUSC_BEV_GRID,
        depth_bins=(1.0, 60.0, 1.0), z_range=(-5.0, 3.0), resnet_depth=50, resnet_width=64, fpn_channels=256,
        depth_mid_channels=256, context_channels=80, bev_channels=(128, 256), bev_blocks=(2, 2),
        bev_strides=(1, 2), neck_channels=256, head_channels=64, depth_loss_weight=3.0,
    )
    cfg.update(overrides)
    return build_camera_bev(**cfg)


def camera_bev_synthetic(*, grid: BEVGrid = NUSC_BEV_GRID, **overrides) -> CameraBEVDet:
    cfg = dict(
        tasks=NUSC_TASKS, class_names=NUSC_DET_CLASSES, image_size=(128, 352), grid=grid,
        depth_bins=(1.0, 61.0, 2.0), z_range=(-5.0, 3.0), resnet_depth=10, resnet_width=16, fpn_channels=64,
        depth_mid_channels=64, context_channels=32, bev_channels=(32, 64), bev_blocks=(1, 1),
        bev_strides=(1, 2), neck_channels=64, head_channels=32, depth_loss_weight=3.0,
    )
    cfg.update(overrides)
    return build_camera_bev(**cfg)
