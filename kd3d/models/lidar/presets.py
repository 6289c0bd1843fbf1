"""Factory functions for the LiDAR CenterPoint detectors (the training engine calls these).

Scales (``scale=``):

=============  ===================  =============  =============  ===========================
scale          point range (m)      voxel (m)      pillar (m)     head grid (``bev_grid``)
=============  ===================  =============  =============  ===========================
``nuscenes``   x, y +-51.2, z -5..3  0.1 0.1 0.2    0.2 x 0.2      0.8 m cells, 128 x 128
``synthetic``  x, y +-51.2, z -5..3  0.2 0.2 0.25   0.4 x 0.4      1.6 m cells, 64 x 64
=============  ===================  =============  =============  ===========================

The voxel model reaches the head grid with sparse stride 8 and a 2D backbone at strides
(1, 2) whose neck returns to stride 1; the pillar model with 2D stages at strides (2, 4, 8)
whose neck meets at stride 4. So voxel and pillar models of one scale share
``head_grid(scale)``; a camera student matching a teacher should use that grid (e.g.
``BEVGrid(-51.2, -51.2, 51.2, 51.2, 1.6, 1.6)`` for ``synthetic``).

``width`` (1.0, 0.5, 0.25) multiplies every channel count (sparse encoder, pillar net, 2D
backbone, neck, head), so compressed students keep the teacher's architecture.

MMDetection3D / OpenPCDet CenterPoint (issue 13; the layer tables are in
:mod:`kd3d.models.backbones.sparse_resnet` and :mod:`kd3d.models.lidar.pillar_net`):
``centerpoint_voxel(scale="nuscenes", block_type="basicblock", bn_momentum=0.01,
with_attrs=False)`` is ``centerpoint_voxel01_second_secfpn`` (residual sparse encoder, sparse
shape 41 in z, 256 BEV channels) and ``centerpoint_pillar(scale="nuscenes", pfn="mmdet3d",
bn_momentum=0.01, with_attrs=False)`` is ``centerpoint_pillar02_second_secfpn`` (11 point
features, padded slots as mmdet3d). kd3d's defaults (plain encoder = mmdet3d's
``SparseEncoder(block_type='conv_module')``, 10-feature pillar net, BN momentum 0.1) stay for
compact students. ``MMDET3D_VOXEL`` / ``MMDET3D_PILLAR`` hold those keyword arguments.
"""
from __future__ import annotations

from typing import Sequence

from torch import nn

from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.backbones.sparse_encoder import scale_channels
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.lidar.detector import LidarCenterPoint
from kd3d.models.lidar.encoders import PillarEncoder, VoxelEncoder
from kd3d.models.necks.second_fpn import SECONDFPN
from kd3d.structures.bev import BEVGrid
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_DET_CLASSES

# CenterPoint's nuScenes class groups and circle-NMS radii (metres) per group.
NUSC_TASKS: tuple[tuple[str, ...], ...] = (
    ("car",), ("truck", "construction_vehicle"), ("bus", "trailer"), ("barrier",),
    ("motorcycle", "bicycle"), ("pedestrian", "traffic_cone"),
)
NUSC_NMS_RADIUS: tuple[float, ...] = (2.0, 3.46, 3.16, 1.0, 0.92, 0.42)

SCALES: dict[str, dict] = {
    "nuscenes": {"point_range": (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), "voxel_size": (0.1, 0.1, 0.2),
                 "pillar_size": (0.2, 0.2), "max_voxels": 90000, "max_pillars": 30000,
                 "voxel_layer_nums": (5, 5), "pillar_layer_nums": (3, 5, 5)},
    "synthetic": {"point_range": (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), "voxel_size": (0.2, 0.2, 0.25),
                  "pillar_size": (0.4, 0.4), "max_voxels": 40000, "max_pillars": 20000,
                  "voxel_layer_nums": (3, 3), "pillar_layer_nums": (2, 3, 3)},
}


# keyword arguments of the presets that build MMDetection3D's nuScenes CenterPoint networks
MMDET3D_VOXEL: dict = {"scale": "nuscenes", "block_type": "basicblock", "bn_momentum": 0.01, "with_attrs": False}
MMDET3D_PILLAR: dict = {"scale": "nuscenes", "pfn": "mmdet3d", "bn_momentum": 0.01, "with_attrs": False}


def set_bn_momentum(module: nn.Module, momentum: float | None) -> None:
    """Set the momentum of every BatchNorm in ``module`` (None: leave them)."""
    if momentum is None:
        return
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = float(momentum)


def _scale(scale: str) -> dict:
    if scale not in SCALES:
        raise ValueError(f"kd3d.models.lidar.presets: scale must be one of {sorted(SCALES)}, got {scale!r}")
    return SCALES[scale]


def head_grid(scale: str = "synthetic", *, point_range: Sequence[float] | None = None) -> BEVGrid:
    """The head's BEVGrid of the voxel and pillar presets of ``scale``."""
    s = _scale(scale)
    pr = point_range or s["point_range"]
    return BEVGrid.from_range(pr, s["voxel_size"][0] * 8)


def _tasks_and_radius(class_names, tasks, nms_radius):
    class_names = tuple(class_names)
    if tasks is None:
        tasks = NUSC_TASKS if set(class_names) == set(NUSC_DET_CLASSES) else tuple((c,) for c in class_names)
    if nms_radius is None:
        nms_radius = NUSC_NMS_RADIUS if tuple(tasks) == NUSC_TASKS else 1.0
    return class_names, tasks, nms_radius


def _head(in_channels, grid, width, class_names, tasks, nms_radius, with_attrs, **kw) -> CenterHead:
    class_names, tasks, nms_radius = _tasks_and_radius(class_names, tasks, nms_radius)
    if with_attrs is None:
        with_attrs = set(class_names) <= set(NUSC_DET_CLASSES)
    return CenterHead(in_channels=in_channels, tasks=tasks, grid=grid, class_names=class_names,
                      share_channels=scale_channels(64, width), head_channels=scale_channels(64, width),
                      nms_radius=nms_radius, attributes=NUSC_ATTRIBUTES if with_attrs else (), **kw)


def centerpoint_voxel(*, scale: str = "synthetic", width: float = 1.0,
                      class_names: Sequence[str] = NUSC_DET_CLASSES, tasks=None,
                      point_range: Sequence[float] | None = None, voxel_size: Sequence[float] | None = None,
                      layer_nums: Sequence[int] | None = None, max_voxels: int | None = None,
                      max_points_per_voxel: int = 10, nms: str = "circle", nms_radius=None,
                      score_threshold: float = 0.1, pre_max: int = 1000, post_max: int = 83,
                      min_radius: int = 2, with_attrs: bool | None = None, block_type: str = "conv_module",
                      z_pad: int | None = None, bn_momentum: float | None = None) -> LidarCenterPoint:
    """CenterPoint voxel detector (SECOND sparse encoder).

    scale: ``"synthetic"`` or ``"nuscenes"`` (defaults for range, voxel, layer counts);
    width: channel multiplier; class_names: order of ``gt_labels`` / output labels;
    tasks: class groups (default: CenterPoint's six nuScenes groups, else one per class);
    point_range [xmin ymin zmin xmax ymax zmax], voxel_size (vx vy vz), layer_nums (2D stage
    depths), max_voxels, max_points_per_voxel: override the scale; nms ("circle" | "rotated" |
    "none"), nms_radius (metres, per task), score_threshold, pre_max, post_max, min_radius:
    passed to :class:`CenterHead`; with_attrs: nuScenes attribute branch (default: on when
    all class_names are nuScenes detection classes; outputs ``attrs`` into NUSC_ATTRIBUTES);
    block_type: ``"conv_module"`` (kd3d's plain sparse encoder) or ``"basicblock"`` (CenterPoint's
    residual encoder); z_pad: extra z layers of the sparse shape above the voxel grid (default 0
    for ``conv_module``, 1 for ``basicblock``; mmdet3d builds both with Z + 1, so an mmdet3d
    ``conv_module`` model needs z_pad=1); bn_momentum: momentum of the encoder, backbone and
    neck BatchNorms (None: kd3d's 0.1; 0.01 in mmdet3d / OpenPCDet).
    """
    s = _scale(scale)
    pr = tuple(point_range or s["point_range"])
    vs = tuple(voxel_size or s["voxel_size"])
    encoder = VoxelEncoder(voxel_size=vs, point_range=pr, width=width, max_points_per_voxel=max_points_per_voxel,
                           max_voxels=max_voxels or s["max_voxels"], block_type=block_type, z_pad=z_pad)
    backbone = SECONDBackbone(in_channels=encoder.bev_channels, layer_nums=layer_nums or s["voxel_layer_nums"],
                              layer_strides=(1, 2), out_channels=(128, 256), width=width)
    neck = SECONDFPN(in_channels=backbone.out_channels_list, in_strides=backbone.strides, out_channels=(256, 256),
                     upsample_strides=(1, 2), width=width)
    head = _head(neck.out_channels_total, encoder.bev_grid.scaled(neck.stride), width, class_names, tasks,
                 nms_radius, with_attrs, nms=nms, score_threshold=score_threshold, pre_max=pre_max,
                 post_max=post_max, min_radius=min_radius)
    for m in (encoder, backbone, neck):
        set_bn_momentum(m, bn_momentum)
    return LidarCenterPoint(encoder=encoder, backbone=backbone, neck=neck, head=head)


def centerpoint_pillar(*, scale: str = "synthetic", width: float = 1.0,
                       class_names: Sequence[str] = NUSC_DET_CLASSES, tasks=None,
                       point_range: Sequence[float] | None = None, pillar_size: Sequence[float] | None = None,
                       layer_nums: Sequence[int] | None = None, max_pillars: int | None = None,
                       max_points_per_pillar: int = 20, nms: str = "circle", nms_radius=None,
                       score_threshold: float = 0.1, pre_max: int = 1000, post_max: int = 83,
                       min_radius: int = 2, with_attrs: bool | None = None, pfn: str = "kd3d",
                       bn_momentum: float | None = None) -> LidarCenterPoint:
    """PointPillars-style CenterPoint (pillar feature net, dense 2D backbone at strides 2/4/8,
    neck at stride 4). Keyword arguments as :func:`centerpoint_voxel`, with pillar_size (px, py),
    max_pillars and max_points_per_pillar instead of the voxel settings, and pfn: ``"kd3d"``
    (10 point features, padded slots left out) or ``"mmdet3d"`` (11 features with the z offset
    to the pillar centre, padded slots zeroed and kept, as mmdet3d). With the default pillar
    size the head grid equals :func:`centerpoint_voxel`'s for the same scale.
    """
    s = _scale(scale)
    pr = tuple(point_range or s["point_range"])
    ps = tuple(pillar_size or s["pillar_size"])
    encoder = PillarEncoder(voxel_size=ps, point_range=pr, width=width, max_points_per_voxel=max_points_per_pillar,
                            max_voxels=max_pillars or s["max_pillars"], pfn=pfn)
    backbone = SECONDBackbone(in_channels=encoder.bev_channels, layer_nums=layer_nums or s["pillar_layer_nums"],
                              layer_strides=(2, 2, 2), out_channels=(64, 128, 256), width=width)
    neck = SECONDFPN(in_channels=backbone.out_channels_list, in_strides=backbone.strides,
                     out_channels=(128, 128, 128), upsample_strides=(0.5, 1, 2), width=width)
    head = _head(neck.out_channels_total, encoder.bev_grid.scaled(neck.stride), width, class_names, tasks,
                 nms_radius, with_attrs, nms=nms, score_threshold=score_threshold, pre_max=pre_max,
                 post_max=post_max, min_radius=min_radius)
    for m in (encoder, backbone, neck):
        set_bn_momentum(m, bn_momentum)
    return LidarCenterPoint(encoder=encoder, backbone=backbone, neck=neck, head=head)


PRESETS = {"centerpoint_voxel": centerpoint_voxel, "centerpoint_pillar": centerpoint_pillar}
