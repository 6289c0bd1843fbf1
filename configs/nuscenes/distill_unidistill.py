"""UniDistill, LiDAR -> camera, nuScenes trainval (GPU).

Pair: teacher ``nuscenes/centerpoint_voxel01`` (CenterPoint voxel 0.1, 10 sweeps) -> student
``nuscenes/lss_r50_256x704`` (LSS R50, single frame); both on the 128 x 128 grid at 0.8 m.
Terms at nine BEV keypoints per GT box: feature L1 on the low-level map ``bev`` (camera pooled
80 -> LiDAR encoder 128 channels, 1x1 adapter), relation (cosine-similarity matrices) on
``bev_neck`` (256 vs 512 channels, no adapter needed), response (Gaussian-weighted heatmap +
box L1) on the head outputs; weights feature/relation/response 100/40/10 (the paper's
LiDAR -> camera setting). Velocity channels are left out of the response term (the
single-frame student cannot see motion). The data loads the teacher's 10 LiDAR sweeps next to
the images.

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_unidistill

Each term as the paper, the authors' code and kd3d define it (defaults, options):
``docs/methods.md``, UniDistill section.
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base

LIDAR = load_base("nuscenes/centerpoint_voxel01")
CAMERA = load_base("nuscenes/lss_r50_256x704")

CONFIG = dataclasses.replace(
    CAMERA,
    name="nusc_lss_r50_256x704_unidistill",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="unidistill", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"teacher_modality": "lidar", "student_modality": "camera",
                       "feature_key": "bev",
                       "relation_key": "bev_neck", "weights": [100.0, 40.0, 10.0], "distill_velocity": False},
    ),
)
