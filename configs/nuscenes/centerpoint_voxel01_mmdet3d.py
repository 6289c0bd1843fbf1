"""CenterPoint voxel 0.1 as MMDetection3D builds it (``centerpoint_voxel01_second_secfpn_nus``).

The network equals mmdet3d's (and OpenPCDet's ``cbgs_voxel01_res3d_centerpoint``): residual sparse
encoder (``block_type="basicblock"``, sparse shape 41 x 1024 x 1024, 256 BEV channels), SECOND
[5, 5] / strides [1, 2] / [128, 256], SECONDFPN [256, 256] at upsample [1, 2], CenterHead with six
separate task heads (shared conv 64, head conv 64, final kernel 3, heatmap bias -2.19), no
attribute branch, BatchNorm momentum 0.01 in the encoder, backbone and neck. Use it as the
architecture of an imported mmdet3d / OpenPCDet teacher (``kd3d convert``) or to train one in kd3d.

Data, schedule and decoding stay kd3d's (the base config ``nuscenes/centerpoint_voxel01``); kd3d
has no GT-sampling augmentation (mmdet3d's ObjectSample), so a kd3d-trained model is not expected
to reach mmdet3d's published mAP. An imported teacher gets its source's decode settings from the
converter.

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01_mmdet3d
(the keyword arguments of kd3d.models.lidar.presets.MMDET3D_VOXEL; a test checks they agree)
"""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/centerpoint_voxel01")

CONFIG = override(BASE, {"name": "nusc_centerpoint_voxel01_mmdet3d", "model.name": "centerpoint_voxel",
                         "model.kwargs": {"scale": "nuscenes", "width": 1.0, "block_type": "basicblock", "bn_momentum": 0.01,
                                          "with_attrs": False}})
