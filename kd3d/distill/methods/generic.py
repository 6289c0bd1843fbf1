"""Generic terms from plain config: FitNet MSE, Hinton KL, attention transfer, CWD, affinity.

    generic_terms(terms=[
        {"name": "fitnet", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
         "student_channels": 8, "teacher_channels": 16, "weight": 1.0},
        {"name": "cwd", "loss": "cwd", "student_key": "heatmap", "teacher_key": "heatmap", "tau": 4.0},
    ])

Channel counts and grids come from the models' feature specs when the terms are built with
models (:func:`kd3d.distill.specs.build_terms_for_models`); the explicit fields above are for
building without models. A 1x1 :class:`ChannelAdapter` is added when the channel counts differ (a
BEV resampling adapter with ``student_grid``/``teacher_grid`` [xmin, ymin, xmax, ymax, dx, dy]).
"""
from __future__ import annotations

from torch import nn

from kd3d.distill.adapters import BEVResample, ChannelAdapter
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.methods import MethodDescriptor
from kd3d.distill.losses import AffinityLoss, AttentionTransferLoss, CWDLoss, KLDivLoss, MSELoss
from kd3d.distill.specs import feature_spec, spec_channels
from kd3d.structures.bev import BEVGrid

LOSSES = {"mse": MSELoss, "kl": KLDivLoss, "at": AttentionTransferLoss, "cwd": CWDLoss, "affinity": AffinityLoss}
CHANNEL_FREE = ("at", "affinity")  # losses on inputs whose channel counts may differ
_TERM_FIELDS = {"name", "loss", "student_key", "teacher_key", "student_channels", "teacher_channels", "weight",
                "student_grid", "teacher_grid"}


def generic_terms(*, terms: list[dict], student_specs: dict | None = None, teacher_specs: dict | None = None):
    """Returns ``(terms, adapters)``; each dict's extra keys go to the loss (e.g. ``tau``, ``temperature``).

    With the models' ``student_specs`` / ``teacher_specs`` (:mod:`kd3d.distill.specs`), the
    channel counts (losses that compare channel for channel: all but ``at`` and ``affinity``) and
    the BEV grids of both keys come from the specs; explicit values must then agree with them.
    """
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
        sk, tk = spec["student_key"], spec["teacher_key"]
        if spec["loss"] not in CHANNEL_FREE and isinstance(sk, str) and isinstance(tk, str):
            if student_specs is not None:
                cs = spec_channels(student_specs, sk, cs, side="student", method=where)
            if teacher_specs is not None:
                ct = spec_channels(teacher_specs, tk, ct, side="teacher", method=where)
            s_spec, t_spec = (feature_spec(student_specs, sk, side="student", method=where),
                              feature_spec(teacher_specs, tk, side="teacher", method=where))
            if s_spec is not None and t_spec is not None and s_spec.kind == t_spec.kind == "bev":
                g = lambda x: [x.xmin, x.ymin, x.xmax, x.ymax, x.dx, x.dy]  # noqa: E731
                spec.setdefault("student_grid", g(s_spec.grid))
                spec.setdefault("teacher_grid", g(t_spec.grid))
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
