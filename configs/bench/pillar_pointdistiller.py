"""Benchmark v2 arm: PointDistiller, pillar 1.0x -> 0.25x.

The method's settings are ``synth/distill_pointdistiller_pillar``'s (docs/methods.md); student, data, targets and
budget are ``bench/pillar_student``'s; the teacher is ``bench/pillar_teacher`` (train it first: its work dir is the
checkpoint). Only the distillation is added, so arm minus ``bench/pillar_student`` at the same seed is a
paired difference.
"""
import dataclasses

from kd3d.engine.config import load_base

METHOD = load_base("synth/distill_pointdistiller_pillar")
STUDENT = load_base("bench/pillar_student")
TEACHER = load_base("bench/pillar_teacher")

CONFIG = dataclasses.replace(
    STUDENT,
    name="bench_pillar_pointdistiller",
    data=dataclasses.replace(STUDENT.data, kwargs={**STUDENT.data.kwargs, "sweeps": TEACHER.data.kwargs["sweeps"]}),
    distill=dataclasses.replace(
        METHOD.distill, teacher_model=TEACHER.model.name, teacher_kwargs=dict(TEACHER.model.kwargs),
        teacher_checkpoint=f"work_dirs/{TEACHER.name}"),
)
