"""Benchmark v2 arm: UniDistill, LiDAR -> camera.

The method's settings are ``synth/distill_unidistill``'s (docs/methods.md); student, data, targets and
budget are ``bench/camera_student``'s; the teacher is ``bench/lidar_teacher`` (train it first: its work dir is the
checkpoint). Only the distillation is added, so arm minus ``bench/camera_student`` at the same seed is a
paired difference.
"""
import dataclasses

from kd3d.engine.config import load_base

METHOD = load_base("synth/distill_unidistill")
STUDENT = load_base("bench/camera_student")
TEACHER = load_base("bench/lidar_teacher")

CONFIG = dataclasses.replace(
    STUDENT,
    name="bench_camera_unidistill",
    data=dataclasses.replace(STUDENT.data, kwargs={**STUDENT.data.kwargs, "sweeps": TEACHER.data.kwargs["sweeps"]}),
    distill=dataclasses.replace(
        METHOD.distill, teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}"),
)
