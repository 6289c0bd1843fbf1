"""Knowledge distillation: ``Distiller``, ``DistillTerm``, adapters, generic losses, teacher
cache, config building and the methods (``kd3d.distill.methods``: bevdistill, distillbev,
unidistill, pointdistiller, pvd)."""
from kd3d.distill.build import DistillConfig, build_distiller, probe_channels
from kd3d.distill.distiller import DistillContext, Distiller, DistillTerm, inherit_head, load_checkpoint_into

__all__ = ["DistillConfig", "DistillContext", "DistillTerm", "Distiller", "build_distiller", "inherit_head",
           "load_checkpoint_into", "probe_channels"]
