"""Fusion detector presets: the LiDAR voxel teacher's encoder, 2D backbone, neck and head
(:mod:`kd3d.models.lidar.presets`, same ``scale`` names and head grid) plus a camera branch
pooling onto the LiDAR encoder's BEV grid.

=============  ==================================  ===========================================
scale          LiDAR part                          camera branch
=============  ==================================  ===========================================
``nuscenes``   SECOND voxel 0.1 m, head 128 x 128  6 x 256 x 704, ResNet-50, D 59 (1..60 m), C 80
``synthetic``  SECOND voxel 0.2 m, head 64 x 64    6 x 128 x 224, ResNet-10 w16, D 30 (1..61 m), C 32
=============  ==================================  ===========================================
"""
from __future__ import annotations

from typing import Sequence

from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.backbones.sparse_encoder import scale_channels
from kd3d.models.camera.student import build_camera_branch
from kd3d.models.fusion.detector import ConvFuser, FusionCenterPoint
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.lidar.encoders import VoxelEncoder
from kd3d.models.lidar.presets import NUSC_NMS_RADIUS, NUSC_TASKS, SCALES
from kd3d.models.necks.second_fpn import SECONDFPN
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES

CAMERA_SCALES: dict[str, dict] = {
    "nuscenes": dict(image_size=(256, 704), depth_bins=(1.0, 60.0, 1.0), resnet_depth=50, resnet_width=64,
                     fpn_channels=256, depth_mid_channels=256, context_channels=80),
    "synthetic": dict(image_size=(128, 224), depth_bins=(1.0, 61.0, 2.0), resnet_depth=10, resnet_width=16,
                      fpn_channels=64, depth_mid_channels=64, context_channels=32),
}


def fusion_centerpoint(*, scale: str = "synthetic", width: float = 1.0, class_names: Sequence[str] = NUSC_DET_CLASSES,
                       tasks=None, point_range: Sequence[float] | None = None, voxel_size: Sequence[float] | None = None,
                       layer_nums: Sequence[int] | None = None, max_voxels: int | None = None,
                       depth_loss_weight: float = 0.0, camera: dict | None = None, head: dict | None = None
                       ) -> FusionCenterPoint:
    """Fusion CenterPoint. ``scale``/``width``/``point_range``/``voxel_size``/``layer_nums``/
    ``max_voxels`` as :func:`kd3d.models.lidar.presets.centerpoint_voxel`; ``camera``: overrides of
    :func:`kd3d.models.camera.student.build_camera_branch` keywords (``grid`` is fixed to the
    LiDAR encoder's); ``head``: extra :class:`CenterHead` keywords (default: the nuScenes
    attribute branch when the classes are nuScenes classes, as in the LiDAR presets)."""
    if scale not in SCALES or scale not in CAMERA_SCALES:
        raise ValueError(f"fusion_centerpoint: scale must be one of {sorted(CAMERA_SCALES)}, got {scale!r}")
    s = SCALES[scale]
    pr = tuple(point_range or s["point_range"])
    encoder = VoxelEncoder(voxel_size=tuple(voxel_size or s["voxel_size"]), point_range=pr, width=width,
                           max_voxels=max_voxels or s["max_voxels"])
    cam_cfg = dict(CAMERA_SCALES[scale], z_range=(pr[2], pr[5]))
    cam_cfg.update(camera or {})
    cam_cfg["grid"] = encoder.bev_grid
    cam = build_camera_branch(**cam_cfg)
    fuser = ConvFuser(lidar_channels=encoder.bev_channels, camera_channels=cam.out_channels,
                      out_channels=encoder.bev_channels)
    backbone = SECONDBackbone(in_channels=fuser.out_channels, layer_nums=layer_nums or s["voxel_layer_nums"],
                              layer_strides=(1, 2), out_channels=(128, 256), width=width)
    neck = SECONDFPN(in_channels=backbone.out_channels_list, in_strides=backbone.strides, out_channels=(256, 256),
                     upsample_strides=(1, 2), width=width)
    class_names = tuple(class_names)
    if tasks is None:
        tasks = NUSC_TASKS if set(class_names) == set(NUSC_DET_CLASSES) else tuple((c,) for c in class_names)
    head_cfg = dict(nms_radius=NUSC_NMS_RADIUS if tuple(tasks) == NUSC_TASKS else 1.0,
                    attributes=NUSC_ATTRIBUTES if set(class_names) <= set(NUSC_DET_CLASSES) else ())
    head_cfg.update(head or {})
    center_head = CenterHead(in_channels=neck.out_channels_total, tasks=tasks, grid=encoder.bev_grid.scaled(neck.stride),
                             class_names=class_names, share_channels=scale_channels(64, width),
                             head_channels=scale_channels(64, width), **head_cfg)
    return FusionCenterPoint(lidar_encoder=encoder, camera=cam, fuser=fuser, backbone=backbone, neck=neck,
                             head=center_head, depth_loss_weight=depth_loss_weight)


PRESETS = {"fusion_centerpoint": fusion_centerpoint}
