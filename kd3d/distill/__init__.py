"""Knowledge distillation: ``Distiller``, ``DistillTerm``, adapters, generic losses, teacher
cache and the methods (``kd3d.distill.methods``: bevdistill, distillbev, unidistill,
pointdistiller, pvd)."""
from kd3d.distill.distiller import DistillContext, Distiller, DistillTerm, inherit_head, load_checkpoint_into

__all__ = ["DistillContext", "DistillTerm", "Distiller", "inherit_head", "load_checkpoint_into"]
