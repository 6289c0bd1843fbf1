"""Building a :class:`Distiller` from a :class:`~kd3d.distill.config.DistillConfig`.

The engine calls ``build_distiller(cfg.distill, student=model)`` when an experiment has a
``distill`` section (see :mod:`kd3d.distill.config` for an example). The method's term builder
receives both models' ``feature_specs()`` and takes the distilled features' channel counts and
geometry from them (:mod:`kd3d.distill.specs`), so ``method_kwargs`` never types them.
"""
from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from kd3d.distill.config import DistillConfig
from kd3d.distill.distiller import Distiller, inherit_head

log = logging.getLogger(__name__)


def teacher_checkpoint_file(spec: str) -> Path:
    """``distill.teacher_checkpoint`` -> the checkpoint file to load.

    The one rule for teacher paths: a relative path is read from the current directory, as is a
    run's default work dir ``work_dirs/<config name>``; so ``kd3d train synth/lidar_teacher``
    followed by ``kd3d train synth/distill_bevdistill`` from the same directory agree. A work dir
    (or its ``checkpoints`` folder) means its latest ``ckpt_step<N>.pth``. A missing path raises
    :class:`~kd3d.errors.CheckpointNotFoundError` naming the field, the absolute path and the fix.
    """
    from kd3d.models.checkpoint import CheckpointNotFoundError, resolve_checkpoint

    try:
        return resolve_checkpoint(spec).resolve()
    except CheckpointNotFoundError as exc:
        raise CheckpointNotFoundError(
            f"distill.teacher_checkpoint={spec!r} (read as {Path(spec).expanduser().absolute()}): {exc}; train the "
            "teacher first from this directory (its default work dir is work_dirs/<teacher config name>) or set "
            "--set distill.teacher_checkpoint=PATH") from exc


def build_teacher(cfg: DistillConfig) -> nn.Module:
    """The teacher model of ``cfg`` (untrained: :func:`build_distiller` loads its checkpoint)."""
    from kd3d.models.build import ModelConfig, build_model

    return build_model(ModelConfig(name=cfg.teacher_model, kwargs=dict(cfg.teacher_kwargs)))


def build_distiller(cfg: DistillConfig, *, student: nn.Module, teacher: nn.Module | None = None) -> Distiller:
    """Teacher (built and loaded), method terms/adapters, optional cache -> :class:`Distiller`."""
    from kd3d.distill.specs import build_terms_for_models

    if not isinstance(cfg, DistillConfig):
        raise TypeError(f"distill: expected a kd3d.distill.DistillConfig, got {type(cfg).__name__}")
    teacher = teacher if teacher is not None else build_teacher(cfg)
    terms, adapters = build_terms_for_models(cfg.method, cfg.method_kwargs, student=student, teacher=teacher)
    distiller = Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters,
                          student_weight=cfg.student_weight, warmup_steps=cfg.warmup_steps,
                          max_ratio=cfg.max_ratio)
    if cfg.teacher_checkpoint:
        path = teacher_checkpoint_file(cfg.teacher_checkpoint)
        distiller.load_teacher(path)
        log.info("teacher %s: loaded weights from %s", cfg.teacher_model, path)
    elif not cfg.allow_untrained_teacher:
        raise ValueError("distill.teacher_checkpoint is empty: distilling from an untrained teacher is almost "
                         "certainly a mistake (set distill.allow_untrained_teacher=True for smoke tests)")
    if cfg.inherit_head:
        inherit_head(student, teacher, mode="all" if cfg.inherit_head is True else str(cfg.inherit_head))
    if cfg.cache_dir:
        from kd3d.distill.cache import TeacherCache

        distiller.teacher_cache = TeacherCache.for_teacher(cfg.cache_dir, teacher, terms,
                                                           region_margin=cfg.cache_region_margin)
    return distiller

