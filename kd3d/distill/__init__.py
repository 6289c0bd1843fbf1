"""Knowledge distillation: ``Distiller``, ``DistillTerm``, adapters, generic losses, teacher
cache, config building and the methods (``kd3d.distill.methods``: bevdistill, distillbev,
unidistill, pointdistiller, pvd).

Exports are imported lazily, so ``from kd3d.distill.config import DistillConfig`` (done by
``kd3d.engine.config``) does not import torch.
"""
from __future__ import annotations

_EXPORTS = {
    "DistillConfig": "kd3d.distill.config",
    "build_distiller": "kd3d.distill.build",
    "DistillContext": "kd3d.distill.distiller", "Distiller": "kd3d.distill.distiller",
    "DistillTerm": "kd3d.distill.distiller", "inherit_head": "kd3d.distill.distiller",
    "load_checkpoint_into": "kd3d.distill.distiller",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kd3d.distill' has no attribute {name!r}")
