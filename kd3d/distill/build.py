"""Building a :class:`Distiller` from a config (the engine's ``cfg.distill`` hook).

``ExperimentConfig.distill = DistillConfig(...)``; :func:`kd3d.engine.builders.build_train_module`
calls ``build_distiller(cfg.distill, student=model)``. Example (camera student, LiDAR teacher)::

    DistillConfig(method="unidistill",
                  teacher_model="centerpoint_voxel", teacher_kwargs={"scale": "synthetic"},
                  teacher_checkpoint="work_dirs/synth_lidar_teacher/checkpoints/last.pth",
                  method_kwargs={"teacher_modality": "lidar", "student_modality": "camera",
                                 "student_channels": 64, "teacher_channels": 256})

Channel counts of the distilled features go in ``method_kwargs``; :func:`probe_channels`
reports them for a model and a batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from kd3d.distill.distiller import Distiller, inherit_head


@dataclass
class DistillConfig:
    """Distillation section of an experiment.

    method             key of :data:`kd3d.distill.methods` factories (bevdistill, distillbev,
                       unidistill, pointdistiller, pvd)
    method_kwargs      keyword config of the method's ``<method>_terms``
    teacher_model      key of ``kd3d.engine.builders.MODELS``; teacher_kwargs its keywords
    teacher_checkpoint path loaded with ``weights_only=True`` (required unless
                       ``allow_untrained_teacher``, meant for tests and smoke runs)
    student_weight     multiplier of the student's own losses
    inherit_head       initialise the student's ``head.*`` from the teacher (DistillBEV)
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
    inherit_head: bool = False
    cache_dir: str = ""
    cache_region_margin: float | None = None
    warmup_steps: int = 0
    max_ratio: float | None = None

    def build(self, *, student: nn.Module) -> Distiller:
        return build_distiller(self, student=student)


def build_teacher(cfg: DistillConfig) -> nn.Module:
    from kd3d.engine.builders import build_model
    from kd3d.engine.config import ModelConfig

    return build_model(ModelConfig(name=cfg.teacher_model, kwargs=dict(cfg.teacher_kwargs)))


def build_distiller(cfg: DistillConfig, *, student: nn.Module, teacher: nn.Module | None = None) -> Distiller:
    """Teacher (built and loaded), method terms/adapters, optional cache -> :class:`Distiller`."""
    from kd3d.distill.methods import build_terms

    if not isinstance(cfg, DistillConfig):
        raise TypeError(f"distill: expected a kd3d.distill.DistillConfig, got {type(cfg).__name__}")
    teacher = teacher if teacher is not None else build_teacher(cfg)
    terms, adapters = build_terms(cfg.method, **cfg.method_kwargs)
    distiller = Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters,
                          student_weight=cfg.student_weight, warmup_steps=cfg.warmup_steps,
                          max_ratio=cfg.max_ratio)
    if cfg.teacher_checkpoint:
        distiller.load_teacher(cfg.teacher_checkpoint)
    elif not cfg.allow_untrained_teacher:
        raise ValueError("distill.teacher_checkpoint is empty: distilling from an untrained teacher is almost "
                         "certainly a mistake (set distill.allow_untrained_teacher=True for smoke tests)")
    if cfg.inherit_head:
        inherit_head(student, teacher)
    if cfg.cache_dir:
        from kd3d.distill.cache import TeacherCache

        distiller.teacher_cache = TeacherCache.for_teacher(cfg.cache_dir, teacher, terms,
                                                           region_margin=cfg.cache_region_margin)
    return distiller


def probe_channels(model: nn.Module, batch, keys=("bev", "bev_stage1", "bev_stage2", "bev_neck", "voxel",
                                                 "point_feats")) -> dict[str, int]:
    """Channel count of each named feature ``model`` produces on ``batch`` (eval, no grad)."""
    import torch

    from kd3d.ops.spconv import is_sparse_tensor

    was = model.training
    model.eval()
    with torch.no_grad():
        feats = model(batch).feats
    model.train(was)
    out = {}
    for k in keys:
        v = feats.get(k)
        if v is None:
            continue
        out[k] = int(v.features.shape[1] if is_sparse_tensor(v) else v.shape[1])
    return out
