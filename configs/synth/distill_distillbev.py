"""DistillBEV, LiDAR -> camera, on synthetic nuScenes: two BEV backbone stages and the head
input (camera 32/64/64 -> LiDAR 128/256/512 channels), region weights a_fg 6e-3, a_bg 4e-2,
a_fp 6e-2 (head level), spatial term 2.5e-3. Train ``synth/lidar_teacher`` first.

The terms warm up over 100 steps and their sum is capped at 0.25x the student losses
(``DISTILL_BALANCE`` in camera_student.py).

Each term as the paper, the authors' code and kd3d define it (defaults, options):
``docs/methods.md``, DistillBEV section.
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base, load_base_module

CAMERA = load_base("synth/camera_student")
LIDAR = load_base("synth/lidar_teacher")
BALANCE = load_base_module("synth/camera_student").DISTILL_BALANCE

CONFIG = dataclasses.replace(
    CAMERA,
    name="synth_camera_student_distillbev",
    data=dataclasses.replace(CAMERA.data, kwargs={**CAMERA.data.kwargs, "sweeps": LIDAR.data.kwargs["sweeps"]}),
    distill=DistillConfig(
        method="distillbev", teacher_model=LIDAR.model.name, teacher_kwargs=dict(LIDAR.model.kwargs),
        teacher_checkpoint=f"work_dirs/{LIDAR.name}",
        method_kwargs={"levels": ["bev_stage1", "bev_stage2", "bev_neck"]},
        **BALANCE,
    ),
)
