"""Benchmark v2 arm: PVD, segmenter 1.0x -> 0.25x.

The method's settings are ``synth/distill_pvd``'s (docs/methods.md); student, data, targets and
budget are ``bench/seg_student``'s; the teacher is ``bench/seg_teacher`` (train it first: its work dir is the
checkpoint). Only the distillation is added, so arm minus ``bench/seg_student`` at the same seed is a
paired difference.
"""
import dataclasses

from kd3d.engine.config import load_base

METHOD = load_base("synth/distill_pvd")
STUDENT = load_base("bench/seg_student")
TEACHER = load_base("bench/seg_teacher")

CONFIG = dataclasses.replace(
    STUDENT,
    name="bench_seg_pvd",
    data=dataclasses.replace(STUDENT.data, kwargs={**STUDENT.data.kwargs, "sweeps": TEACHER.data.kwargs["sweeps"]}),
    distill=dataclasses.replace(
        METHOD.distill, teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}"),
)
