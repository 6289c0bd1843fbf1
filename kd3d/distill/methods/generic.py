"""Generic terms from plain config: FitNet MSE, Hinton KL, attention transfer, CWD, affinity.

    generic_terms(terms=[
        {"name": "fitnet", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
         "student_channels": 8, "teacher_channels": 16, "weight": 1.0},
        {"name": "cwd", "loss": "cwd", "student_key": "heatmap", "teacher_key": "heatmap", "tau": 4.0},
    ])

A 1x1 :class:`ChannelAdapter` is added when both channel counts are given and differ (a
BEV resampling adapter with ``student_grid``/``teacher_grid`` [xmin, ymin, xmax, ymax, dx, dy]).
"""
from __future__ import annotations

from torch import nn

from kd3d.distill.adapters import BEVResample, ChannelAdapter
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.methods import MethodDescriptor
from kd3d.distill.losses import AffinityLoss, AttentionTransferLoss, CWDLoss, KLDivLoss, MSELoss
from kd3d.structures.bev import BEVGrid

LOSSES = {"mse": MSELoss, "kl": KLDivLoss, "at": AttentionTransferLoss, "cwd": CWDLoss, "affinity": AffinityLoss}
_TERM_FIELDS = {"name", "loss", "student_key", "teacher_key", "student_channels", "teacher_channels", "weight",
                "student_grid", "teacher_grid"}


def generic_terms(*, terms: list[dict]):
    """Returns ``(terms, adapters)``; each dict's extra keys go to the loss (e.g. ``tau``, ``temperature``)."""
    out, adapters = [], {}
    for i, spec in enumerate(terms):
        spec = dict(spec)
        where = f"generic term #{i} ({spec.get('name', '?')})"
        for req in ("name", "loss", "student_key", "teacher_key"):
            if req not in spec:
                raise ValueError(f"{where}: missing field {req!r}")
        if spec["loss"] not in LOSSES:
            raise ValueError(f"{where}: loss must be one of {sorted(LOSSES)}, got {spec['loss']!r}")
        loss = LOSSES[spec["loss"]](**{k: v for k, v in spec.items() if k not in _TERM_FIELDS})
        modules = []
        cs, ct = spec.get("student_channels"), spec.get("teacher_channels")
        if cs is not None and ct is not None and int(cs) != int(ct):
            modules.append(ChannelAdapter(int(cs), int(ct)))
        if spec.get("student_grid") is not None and spec.get("teacher_grid") is not None:
            src, dst = BEVGrid(*spec["student_grid"]), BEVGrid(*spec["teacher_grid"])
            if src != dst:
                modules.append(BEVResample(src=src, dst=dst))
        adapter = None
        if modules:
            adapter = f"generic_{spec['name']}"
            adapters[adapter] = modules[0] if len(modules) == 1 else nn.Sequential(*modules)
        out.append(DistillTerm(spec["name"], spec["student_key"], spec["teacher_key"], loss, adapter,
                               float(spec.get("weight", 1.0))))
    return out, adapters


DESCRIPTOR = MethodDescriptor("generic", generic_terms, "Generic terms from plain config: FitNet MSE, Hinton KL, "
                              "attention transfer, CWD, affinity")
