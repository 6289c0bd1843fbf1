"""UniDistill, fusion -> camera, nuScenes trainval (GPU).

Pair: teacher ``nuscenes/fusion_voxel01`` (voxel 0.1 LiDAR branch + LSS R50 camera branch,
10 sweeps) -> student ``nuscenes/lss_r50_256x704`` (LSS R50, single frame); both on the
128 x 128 grid at 0.8 m. Terms at nine BEV keypoints per GT box: feature L1 on ``bev`` (camera
pooled 80 -> fused 128 channels, 1x1 adapter), relation on ``bev_neck`` (256 vs 512 channels,
no adapter), response on the head outputs; weights feature/relation/response 10/5/10 (the
paper's fusion -> camera setting). Velocity channels are left out of the response term (the
single-frame student cannot see motion). The data is the fusion teacher's: images and 10
LiDAR sweeps.

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/fusion_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_unidistill_fusion

Each term as the paper, the authors' code and kd3d define it (defaults, options):
``docs/methods.md``, UniDistill section.
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base

FUSION = load_base("nuscenes/fusion_voxel01")
CAMERA = load_base("nuscenes/lss_r50_256x704")

CONFIG = dataclasses.replace(
    CAMERA,
    name="nusc_lss_r50_256x704_unidistill_fusion",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, **FUSION.data.kwargs}),
    distill=DistillConfig(
        method="unidistill", teacher_model=FUSION.model.name, teacher_kwargs=dict(FUSION.model.kwargs),
        teacher_checkpoint=f"work_dirs/{FUSION.name}",
        method_kwargs={"teacher_modality": "fusion", "student_modality": "camera",
                       "feature_key": "bev",
                       "relation_key": "bev_neck", "weights": [10.0, 5.0, 10.0], "distill_velocity": False},
    ),
)
