"""``DistillTerm`` and ``Distiller``: a frozen teacher, a student and weighted distillation terms.

A term reads ``student_out.feats[student_key]`` and ``teacher_out.feats[teacher_key]`` (a tuple
of keys reads a tuple of features), passes the student value through ``adapters[adapter]`` when
set, and calls ``loss(student_value, teacher_value, ctx)`` -> scalar. Method-specific terms use
``ctx`` (batch with GT boxes, both outputs, both models' BEV grids).

``Distiller.forward(batch)`` returns a flat loss dict::

    {"student/<k>": student.loss(...)[k], ..., "distill/<term.name>": weight * term_loss, ...}

Balancing (both off by default, i.e. the papers' plain weighted sum):

* ``warmup_steps`` ramps every distillation term linearly from 0 to its full weight over the
  first optimiser steps (the trainer calls :meth:`Distiller.set_step` before each step).
* ``max_ratio`` caps the summed distillation losses at ``max_ratio`` times the summed student
  losses: when the cap binds, every ``distill/*`` term is multiplied by the same detached factor
  ``max_ratio * sum(student) / sum(distill)``, so the terms keep their relative weights and their
  gradients stay on the scale of the student's own. The papers' weights are tuned for their
  teachers' feature magnitudes; on another teacher an imitation term can be 100x the detection
  loss and, with global gradient clipping, starve the student's own gradient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from kd3d.models.base import ModelOutput
from kd3d.models.checkpoint import load_weights, state_dict_from


@dataclass(frozen=True)
class DistillTerm:
    """One weighted distillation loss.

    name         key suffix in the loss dict (``distill/<name>``); unique within a Distiller
    student_key  feature name (or tuple of names) in the student's ``ModelOutput.feats``
    teacher_key  feature name (or tuple of names) in the teacher's ``ModelOutput.feats``
    loss         callable ``(student_value, teacher_value, ctx) -> scalar``; an ``nn.Module``
                 loss with parameters is trained with the student (dropped at export)
    adapter      name of the adapter module applied to the student value, or None
    weight       multiplier of the loss
    method       name of the ``METHODS`` entry that built the term (set by
                 :func:`kd3d.distill.methods.build_terms`; not part of :meth:`describe`)
    """

    name: str
    student_key: str | tuple[str, ...]
    teacher_key: str | tuple[str, ...]
    loss: Callable[..., torch.Tensor]
    adapter: str | None = None
    weight: float = 1.0
    method: str | None = None

    def describe(self) -> str:
        """Stable text used in cache hashes: everything except the loss object's identity."""
        loss_repr = type(self.loss).__name__
        if isinstance(self.loss, nn.Module):
            loss_repr += f"({self.loss.extra_repr()})"
        return f"{self.name}|{self.student_key}|{self.teacher_key}|{loss_repr}|{self.adapter}|{self.weight!r}"


@dataclass
class DistillContext:
    """What a method-specific loss may read besides the two features."""

    batch: Any
    student_out: ModelOutput
    teacher_out: ModelOutput
    student_grid: Any = None  # BEVGrid of the student's 'bev_neck' (None for segmenters)
    teacher_grid: Any = None


def _fetch(out: ModelOutput, key, who: str):
    if isinstance(key, (tuple, list)):
        return tuple(_fetch(out, k, who) for k in key)
    if key not in out.feats:
        raise KeyError(f"{who} output has no feature {key!r}; available: {sorted(out.feats)}")
    return out.feats[key]


def load_checkpoint_into(model: nn.Module, path, *, strict: bool = True) -> dict:
    """Load a checkpoint into ``model`` with :mod:`kd3d.models.checkpoint` (checksum verified,
    ``weights_only=True``).

    ``path``: a checkpoint file, or a training work dir / its ``checkpoints`` folder (the
    ``ckpt_step<N>.pth`` with the largest N). The weights are the checkpoint's ``student`` (a
    distillation checkpoint's deployable student), else ``model``, else ``state_dict``, else the
    bare dict. A mismatch raises :class:`kd3d.errors.CheckpointError` (a ValueError) naming the
    file and a few keys of each kind (``strict=False`` tolerates missing/unexpected keys, never
    shape mismatches). Returns the loaded state dict.
    """
    _, ckpt = load_weights(model, path, strict=strict)
    return state_dict_from(ckpt)


class Distiller(nn.Module):
    """Frozen ``teacher`` + trainable ``student`` + ``adapters`` + ``terms``.

    The teacher never receives gradients (``requires_grad`` off, forward under ``no_grad``) and
    stays in eval mode (BatchNorm statistics and dropout frozen) even when the Distiller is put
    in train mode. ``teacher_cache`` (a :class:`kd3d.distill.cache.TeacherCache`) replaces the
    teacher forward by cached features; with a teacher as well, samples missing from the cache
    are computed and stored on the fly (the first epoch fills it). The deployable model is
    ``student`` (predict with ``student.predict``). ``student_weight`` scales the student's own
    losses.
    """

    def __init__(self, *, student: nn.Module, teacher: nn.Module | None, terms: list[DistillTerm],
                 adapters: dict[str, nn.Module] | None = None, teacher_cache=None,
                 student_weight: float = 1.0, warmup_steps: int = 0, max_ratio: float | None = None):
        super().__init__()
        if teacher is None and teacher_cache is None:
            raise ValueError("Distiller needs a teacher model or a teacher_cache")
        names = [t.name for t in terms]
        if len(set(names)) != len(names):
            raise ValueError(f"Distiller: duplicate term names {names}")
        adapters = dict(adapters or {})
        for t in terms:
            if t.adapter is not None and t.adapter not in adapters:
                raise KeyError(f"term {t.name!r} uses adapter {t.adapter!r}, not among {sorted(adapters)}")
        self.student = student
        self.teacher = teacher
        self.adapters = nn.ModuleDict(adapters)
        self.term_losses = nn.ModuleDict({t.name: t.loss for t in terms if isinstance(t.loss, nn.Module)})
        self.terms = list(terms)
        self.teacher_cache = teacher_cache
        self.teacher_checkpoint: str | None = None  # file the teacher was loaded from (load_teacher)
        self.student_weight = float(student_weight)
        if warmup_steps < 0:
            raise ValueError(f"Distiller: warmup_steps must be >= 0, got {warmup_steps}")
        if max_ratio is not None and not max_ratio > 0:
            raise ValueError(f"Distiller: max_ratio must be > 0 or None, got {max_ratio}")
        self.warmup_steps = int(warmup_steps)
        self.max_ratio = None if max_ratio is None else float(max_ratio)
        self.step = 0  # optimiser step, set by the trainer (set_step) for the warm-up
        self.last_distill_scale = 1.0  # factor applied to the distill terms at the last forward
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True):
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def set_step(self, step: int) -> None:
        """Current optimiser step (0-based); drives the distillation warm-up."""
        self.step = int(step)

    def warmup_factor(self) -> float:
        if self.warmup_steps <= 0:
            return 1.0
        return min(1.0, (self.step + 1) / self.warmup_steps)

    def trainable_parameters(self):
        """Parameters of the student, the adapters and parametric losses (not the teacher)."""
        return [p for p in self.parameters() if p.requires_grad]

    @property
    def student_grid(self):
        return getattr(self.student, "bev_grid", None)

    @property
    def teacher_grid(self):
        grid = getattr(self.teacher, "bev_grid", None) if self.teacher is not None else None
        if grid is None and self.teacher_cache is not None:
            grid = getattr(self.teacher_cache, "bev_grid", None)
        return grid

    # ---------------------------------------------------------------- forward
    def teacher_forward(self, batch) -> ModelOutput:
        """Teacher features for ``batch``: from the cache when one is set, else a no-grad forward."""
        if self.teacher_cache is not None:
            if self.teacher is not None:
                self.teacher_cache.fill(self.teacher, batch)  # first epoch: run the teacher, store
            return self.teacher_cache.output_for(batch)
        with torch.no_grad():
            return self.teacher(batch)

    def forward(self, batch) -> dict[str, torch.Tensor]:
        """The flat loss dict of ``batch``. Keeps no reference to this step's outputs (the
        features are freed with the graph); use :meth:`forward_with_outputs` to see them."""
        return self.forward_with_outputs(batch)[0]

    def forward_with_outputs(self, batch) -> tuple[dict[str, torch.Tensor], ModelOutput, ModelOutput]:
        """``(losses, student_out, teacher_out)``: :meth:`forward`'s loss dict and the two outputs
        it was computed from, returned to the caller rather than stored on the Distiller."""
        student_out = self.student(batch)
        teacher_out = self.teacher_forward(batch)
        losses: dict[str, torch.Tensor] = {}
        if self.student_weight:
            for k, v in self.student.loss(student_out, batch).items():
                losses[f"student/{k}"] = v * self.student_weight
        distill = self.distill_losses(student_out, teacher_out, batch)
        scale = self.warmup_factor()
        if self.max_ratio is not None and distill and self.training:
            d = float(sum(v.detach() for v in distill.values()))
            s = float(sum(v.detach() for v in losses.values())) if losses else 0.0
            if d * scale > self.max_ratio * s:
                scale = self.max_ratio * s / d
        self.last_distill_scale = scale
        if scale != 1.0:
            distill = {k: v * scale for k, v in distill.items()}
        losses.update(distill)
        return losses, student_out, teacher_out

    def context(self, batch, student_out: ModelOutput, teacher_out: ModelOutput) -> DistillContext:
        """The :class:`DistillContext` the terms' losses see for ``batch``."""
        return DistillContext(batch=batch, student_out=student_out, teacher_out=teacher_out,
                              student_grid=self.student_grid, teacher_grid=self.teacher_grid)

    def term_inputs(self, term: DistillTerm, student_out: ModelOutput, teacher_out: ModelOutput) -> tuple:
        """``(student value after the term's adapter, teacher value)``: what ``term.loss`` reads."""
        s = _fetch(student_out, term.student_key, "student")
        t = _fetch(teacher_out, term.teacher_key, "teacher")
        if term.adapter is not None:
            s = self.adapters[term.adapter](s)
        return s, t

    def distill_losses(self, student_out: ModelOutput, teacher_out: ModelOutput, batch) -> dict[str, torch.Tensor]:
        """Weighted ``distill/<name>`` losses from already computed outputs."""
        ctx = self.context(batch, student_out, teacher_out)
        losses = {}
        for term in self.terms:
            s, t = self.term_inputs(term, student_out, teacher_out)
            losses[f"distill/{term.name}"] = term.loss(s, t, ctx) * term.weight
        return losses

    @staticmethod
    def total_loss(losses: dict[str, torch.Tensor]) -> torch.Tensor:
        return sum(losses.values())

    # ------------------------------------------------------------ checkpoints
    def student_state_dict(self) -> dict[str, torch.Tensor]:
        """The bare student's state dict (no teacher, adapters or distillation heads)."""
        student = getattr(self.student, "model", self.student) if type(self.student).__name__ == "TappedModel" \
            else self.student
        return {k: v.detach().clone() for k, v in student.state_dict().items()}

    def load_teacher(self, path, *, strict: bool = True) -> None:
        """Load teacher weights (``weights_only=True``; a work dir means its latest checkpoint) and
        remember the file in ``teacher_checkpoint``: training checkpoints record it and a
        fingerprint of the teacher's weights instead of the weights."""
        if self.teacher is None:
            raise ValueError("Distiller has no teacher model to load into")
        path, _ = load_weights(self.teacher, path, strict=strict)
        self.teacher_checkpoint = str(path)  # recorded in training checkpoints instead of the weights
        self.teacher.requires_grad_(False)
        self.teacher.eval()


def inherit_head(student: nn.Module, teacher: nn.Module, *, prefix: str = "head", mode: str = "all") -> list[str]:
    """Initialise the student's head from the teacher's (DistillBEV's head inheritance).

    ``mode="all"``: copies every ``prefix.*`` tensor whose name and shape match (others are left
    as they are). ``mode="task_heads"``: copies exactly the per-task branches after the shared
    conv, ``prefix.task_heads.*`` of a :class:`~kd3d.models.heads.CenterHead` (what DistillBEV's
    authors inherit; equal in shape whenever the shared-conv widths and tasks match), and raises
    naming every tensor that is missing or differs in shape. Returns the copied names; raises when
    nothing matches (a wrong prefix would silently do nothing otherwise).
    """
    if mode not in ("all", "task_heads"):
        raise ValueError(f"inherit_head: mode must be 'all' or 'task_heads', got {mode!r}")
    s_state, t_state = student.state_dict(), teacher.state_dict()
    scope = prefix + (".task_heads." if mode == "task_heads" else ".")
    names = [n for n in t_state if n.startswith(scope)]
    if mode == "task_heads":
        bad = [f"{n}: teacher {tuple(t_state[n].shape)} vs student "
               f"{tuple(s_state[n].shape) if n in s_state else 'missing'}"
               for n in names if n not in s_state or s_state[n].shape != t_state[n].shape]
        bad += [f"{n}: missing in the teacher" for n in s_state if n.startswith(scope) and n not in t_state]
        if bad:
            raise ValueError(f"inherit_head(mode='task_heads'): student and teacher per-task heads differ "
                             f"({len(bad)} tensors; same shared-conv width and tasks needed): " + "; ".join(bad[:5]))
    copied = []
    with torch.no_grad():
        for name in names:
            if name in s_state and s_state[name].shape == t_state[name].shape:
                s_state[name].copy_(t_state[name])
                copied.append(name)
    if not copied:
        raise ValueError(f"inherit_head: no tensor under {scope.rstrip('.')!r} matches in name and shape "
                         "between student and teacher")
    return copied
