"""CenterPoint pillar 0.2 as MMDetection3D builds it (``centerpoint_pillar02_second_secfpn_nus``).

The network equals mmdet3d's: PillarFeatureNet with 11 point features (x y z i dt, offsets to the
pillar's point mean, offsets to the pillar centre including z), padded point slots zeroed and kept
(``pfn="mmdet3d"``), Linear(11, 64) + BatchNorm1d + ReLU + max, scatter to 512 x 512, SECOND
[3, 5, 5] / strides [2, 2, 2] / [64, 128, 256], SECONDFPN [128, 128, 128] at upsample
[0.5, 1, 2], CenterHead as the voxel model (head grid 128 x 128 at 0.8 m), no attribute branch,
BatchNorm momentum 0.01 in the encoder, backbone and neck.

Data, schedule and decoding stay kd3d's (see ``nuscenes/centerpoint_voxel01_mmdet3d``).
(the keyword arguments of kd3d.models.lidar.presets.MMDET3D_PILLAR; a test checks they agree)
"""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/centerpoint_pillar02")

CONFIG = override(BASE, {"name": "nusc_centerpoint_pillar02_mmdet3d", "model.name": "centerpoint_pillar",
                         "model.kwargs": {"scale": "nuscenes", "width": 1.0, "pfn": "mmdet3d", "bn_momentum": 0.01,
                                          "with_attrs": False}})
