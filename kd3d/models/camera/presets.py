"""Camera BEV student presets.

* :func:`camera_bev_nuscenes`: BEVDepth-R50-like; 6 cameras at 256 x 704, 59 depth bins over
  1..60 m, BEV 128 x 128 at 0.8 m over +-51.2 m (the CenterPoint voxel teacher's head grid:
  0.1 m voxels x stride 8).
* :func:`camera_bev_synthetic`: the same architecture shrunk to train on a 2-core CPU in
  minutes (6 cameras at 128 x 224 input, e.g. the synthetic generator's 320 x 180 images
  resized by 0.711; ResNet-10 at width 16, 30 depth bins of 2 m, thin BEV encoder). Its grid
  defaults to the LiDAR presets' ``head_grid("synthetic")`` (+-51.2 m at 1.6 m, 64 x 64), so
  teacher and student maps coincide.

Both use the LiDAR presets' task groups, circle-NMS radii and nuScenes attribute branch, so
teacher and student heads have the same layout.

Every keyword of :func:`kd3d.models.camera.student.build_camera_bev` can be overridden;
``num_head_convs`` (convs per CenterHead branch, default 2 as CenterPoint) is merged into the
preset's head keywords (1 = a single 3x3 output conv per branch: the calibrated benchmark recipe,
whose head then costs less than the rest of the synthetic student).
"""
from __future__ import annotations

from kd3d.models.camera.student import CameraBEVDet, build_camera_bev
from kd3d.models.lidar.presets import NUSC_NMS_RADIUS, NUSC_TASKS, head_grid
from kd3d.structures.bev import BEVGrid
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES

NUSC_BEV_GRID = head_grid("nuscenes")  # +-51.2 m at 0.8 m, 128 x 128
SYNTH_BEV_GRID = head_grid("synthetic")  # +-51.2 m at 1.6 m, 64 x 64
_HEAD = {"nms_radius": NUSC_NMS_RADIUS, "attributes": NUSC_ATTRIBUTES}


def _head_kwargs(num_head_convs: int) -> dict:
    if int(num_head_convs) < 1:
        raise ValueError(f"camera preset: num_head_convs must be >= 1, got {num_head_convs}")
    return {**_HEAD, "num_head_convs": int(num_head_convs)}


def camera_bev_nuscenes(*, num_head_convs: int = 2, **overrides) -> CameraBEVDet:
    cfg = dict(
        tasks=NUSC_TASKS, class_names=NUSC_DET_CLASSES, image_size=(256, 704), grid=NUSC_BEV_GRID,
        depth_bins=(1.0, 60.0, 1.0), z_range=(-5.0, 3.0), resnet_depth=50, resnet_width=64, fpn_channels=256,
        depth_mid_channels=256, context_channels=80, bev_channels=(128, 256), bev_blocks=(2, 2),
        bev_strides=(1, 2), neck_channels=256, head_channels=64, depth_loss_weight=3.0,
        head_kwargs=_head_kwargs(num_head_convs),
    )
    cfg.update(overrides)
    return build_camera_bev(**cfg)


def camera_bev_synthetic(*, grid: BEVGrid = SYNTH_BEV_GRID, num_head_convs: int = 2, **overrides) -> CameraBEVDet:
    cfg = dict(
        tasks=NUSC_TASKS, class_names=NUSC_DET_CLASSES, image_size=(128, 224), grid=grid,
        depth_bins=(1.0, 61.0, 2.0), z_range=(-5.0, 3.0), resnet_depth=10, resnet_width=16, fpn_channels=64,
        depth_mid_channels=64, context_channels=32, bev_channels=(32, 64), bev_blocks=(1, 1),
        bev_strides=(1, 2), neck_channels=64, head_channels=32, depth_loss_weight=3.0,
        head_kwargs=_head_kwargs(num_head_convs),
    )
    cfg.update(overrides)
    return build_camera_bev(**cfg)
