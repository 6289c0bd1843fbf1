"""BEVDistill, LiDAR -> camera, on synthetic nuScenes (train ``synth/lidar_teacher`` first; its
work dir is the checkpoint). Dense Gaussian imitation (0.01) on ``head_shared``, the output of
each CenterHead's shared 3x3 conv + BN + ReLU (camera 32 -> LiDAR 64 channels, 1x1 adapter);
instance InfoNCE (0.2, teacher anchors, 512-d projection heads) on the head input ``bev_neck``
(camera 64, LiDAR 512 channels); prediction L1 (1.0) on the teacher's peaks. What each term
computes against the paper and the authors' code: docs/methods.md (BEVDistill).

The prediction term skips velocity (single-frame student); the terms warm up over 100 steps and
their sum is capped at 0.25x the student losses (``DISTILL_BALANCE`` in camera_student.py)."""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, load_base_module

CAMERA = load_base("synth/camera_student")
LIDAR = load_base("synth/lidar_teacher")
BALANCE = load_base_module("synth/camera_student").DISTILL_BALANCE

CONFIG = dataclasses.replace(
    CAMERA,
    name="synth_camera_student_bevdistill",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="bevdistill", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"feature_key": "head_shared", "instance_key": "bev_neck",
                       "distill_velocity": False},
        **BALANCE,
    ),
)
