"""BEVDistill, LiDAR -> camera, nuScenes trainval (GPU).

Pair: teacher ``nuscenes/centerpoint_voxel01`` (CenterPoint voxel 0.1, 10 sweeps) -> student
``nuscenes/lss_r50_256x704`` (LSS R50, single frame); both heads on the same 128 x 128 grid at
0.8 m, so no resampling. Dense foreground-Gaussian imitation 0.01 on ``head_shared``, the
output of each CenterHead's shared 3x3 conv + BN + ReLU (64 channels on both sides, so no
adapter, as the authors' code); instance InfoNCE (temperature 0.07, teacher anchors, 512-d
projection heads) 0.2 on the head input ``bev_neck`` (camera 256, LiDAR 512 channels) (the
paper's weights); prediction L1 on the teacher's peaks 1.0 (the paper gives no value), velocity
channels left out of the prediction term (the single-frame student cannot see motion). What
each term computes against the paper and the authors' code: docs/methods.md (BEVDistill).
The data loads the teacher's 10 LiDAR sweeps next to the images (the student's depth targets
use key-frame points only).

Train the teacher first; its work dir is the checkpoint::

    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/centerpoint_voxel01
    torchrun --nproc_per_node 8 -m kd3d.cli.main train nuscenes/distill_bevdistill
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base

LIDAR = load_base("nuscenes/centerpoint_voxel01")
CAMERA = load_base("nuscenes/lss_r50_256x704")

CONFIG = dataclasses.replace(
    CAMERA,
    name="nusc_lss_r50_256x704_bevdistill",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="bevdistill", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"feature_key": "head_shared", "instance_key": "bev_neck",
                       "dense_weight": 0.01, "instance_weight": 0.2, "prediction_weight": 1.0,
                       "temperature": 0.07, "distill_velocity": False},
    ),
)
