"""The distillation section of an experiment config (a plain dataclass; imports no torch).

``ExperimentConfig.distill`` is a :class:`DistillConfig` or ``None``; the engine hands it to
:func:`kd3d.distill.build_distiller` together with the student. Example (camera student, LiDAR
teacher)::

    DistillConfig(method="unidistill",
                  teacher_model="centerpoint_voxel", teacher_kwargs={"scale": "synthetic"},
                  teacher_checkpoint="work_dirs/synth_lidar_teacher/checkpoints/last.pth",
                  method_kwargs={"teacher_modality": "lidar", "student_modality": "camera",
                                 "student_channels": 64, "teacher_channels": 256})
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DistillConfig:
    """Distillation section of an experiment.

    method             key of :data:`kd3d.distill.methods` factories (bevdistill, distillbev,
                       unidistill, pointdistiller, pvd)
    method_kwargs      keyword config of the method's ``<method>_terms``
    teacher_model      key of :data:`kd3d.models.build.MODELS` (or a ``"module:callable"``
                       path); teacher_kwargs its keywords
    teacher_checkpoint path loaded with ``weights_only=True`` (required unless
                       ``allow_untrained_teacher``, meant for tests and smoke runs)
    student_weight     multiplier of the student's own losses
    inherit_head       initialise the student's head from the teacher's (DistillBEV): False,
                       True / "all" (every ``head.*`` tensor of equal shape) or "task_heads"
                       (exactly the per-task branches after the shared conv, as the authors)
    cache_dir          teacher cache folder ('' = run the teacher every step); needs
                       deterministic inputs (no train augmentation)
    cache_region_margin  store only BEV cells within this many metres of GT boxes (None: all);
                       for foreground-only terms (BEVDistill, UniDistill)
    warmup_steps       ramp the distillation terms linearly from 0 over this many steps (0: off)
    max_ratio          cap the summed distillation losses at this multiple of the summed student
                       losses (one detached factor for all terms; None: off). See
                       :class:`kd3d.distill.distiller.Distiller`.
    """

    method: str = "bevdistill"
    method_kwargs: dict = field(default_factory=dict)
    teacher_model: str = "centerpoint_voxel"
    teacher_kwargs: dict = field(default_factory=dict)
    teacher_checkpoint: str = ""
    allow_untrained_teacher: bool = False
    student_weight: float = 1.0
    inherit_head: bool | str = False
    cache_dir: str = ""
    cache_region_margin: float | None = None
    warmup_steps: int = 0
    max_ratio: float | None = None
