"""UniDistill, LiDAR -> camera, on synthetic nuScenes: the camera student distilled from the
trained LiDAR teacher (train ``synth/lidar_teacher`` first; its work dir is the checkpoint).

Feature/relation/response weights 100/40/10 (the paper's LiDAR -> camera setting).
The response term skips velocity (single-frame student); the terms warm up over 100 steps and
their sum is capped at 0.25x the student losses (``DISTILL_BALANCE`` in camera_student.py).

Each term as the paper, the authors' code and kd3d define it (defaults, options):
``docs/methods.md``, UniDistill section.
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, load_base_module

CAMERA = load_base("synth/camera_student")
LIDAR = load_base("synth/lidar_teacher")
BALANCE = load_base_module("synth/camera_student").DISTILL_BALANCE

CONFIG = dataclasses.replace(
    CAMERA,
    name="synth_camera_student_unidistill",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="unidistill", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"teacher_modality": "lidar", "student_modality": "camera",
                       "distill_velocity": False},
        **BALANCE,
    ),
)
