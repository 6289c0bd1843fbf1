"""UniDistill, fusion -> camera (weights 10/5/10), on synthetic nuScenes. Train
``synth/fusion_teacher`` first; its work dir is the checkpoint.

Each term as the paper, the authors' code and kd3d define it (defaults, options):
``docs/methods.md``, UniDistill section.
"""
import dataclasses

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_base

CAMERA = load_base("synth/camera_student")
FUSION = load_base("synth/fusion_teacher")

CONFIG = dataclasses.replace(
    CAMERA,
    name="synth_camera_student_unidistill_fusion",
    data=dataclasses.replace(CAMERA.data, kwargs=dict(FUSION.data.kwargs)),
    distill=DistillConfig(
        method="unidistill", teacher_model=FUSION.model.name, teacher_kwargs=dict(FUSION.model.kwargs),
        teacher_checkpoint=f"work_dirs/{FUSION.name}",
        method_kwargs={"teacher_modality": "fusion", "student_modality": "camera"},
    ),
)
