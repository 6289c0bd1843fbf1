"""Generic distillation losses (pure functions) and their term wrappers.

Functions take plain tensors; the ``*Loss`` modules wrap them with the term signature
``loss(student_value, teacher_value, ctx) -> scalar`` used by :class:`kd3d.distill.Distiller`
(``ctx`` is a :class:`kd3d.distill.distiller.DistillContext`, ignored by generic terms).

Conventions: the teacher tensor is treated as a constant target (it normally comes from a
``no_grad`` forward; it is detached here as well). KL directions follow Hinton:
``KL(p_T || p_S)``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_same_shape(s: torch.Tensor, t: torch.Tensor, what: str) -> None:
    if s.shape != t.shape:
        raise ValueError(
            f"{what}: student {tuple(s.shape)} and teacher {tuple(t.shape)} must have the same shape "
            "(add an adapter to the term)"
        )


def kl_div_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0,
                dim: int = 1) -> torch.Tensor:
    """Hinton KD: ``T^2 * KL(softmax(t/T) || softmax(s/T))`` summed over ``dim`` (classes) and
    averaged over every other position.

    ``student_logits``/``teacher_logits``: same shape, e.g. (N, K) point logits or
    (B, K, H, W) maps with ``dim=1``.

    Reduction: on a (B, K, H, W) map this is the mean over the B*H*W positions, whereas the
    common ``KLDivLoss(reduction="batchmean")`` divides the sum by B only, i.e. it is H*W times
    larger: a weight ``w`` given for a "batchmean" KL corresponds to ``w * H * W`` here (and a kd3d
    weight to ``w / (H * W)`` there). On (N, K) rows both are the mean over the N rows.
    """
    _check_same_shape(student_logits, teacher_logits, "kl_div_loss")
    t = temperature
    log_ps = F.log_softmax(student_logits / t, dim=dim)
    log_pt = F.log_softmax(teacher_logits.detach() / t, dim=dim)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(dim=dim)
    return kl.mean() * (t * t)


def fitnet_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """FitNet hint loss: ``mean((FS' - FT)^2)`` (the adapter producing FS' lives in the term)."""
    _check_same_shape(student, teacher, "fitnet_mse")
    return F.mse_loss(student, teacher.detach())


def attention_map(feat: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """Zagoruyko & Komodakis spatial attention: (B, C, H, W) -> (B, H*W), ``mean_c |F|^p``,
    L2-normalised per sample."""
    if feat.ndim != 4:
        raise ValueError(f"attention_map expects (B, C, H, W), got {tuple(feat.shape)}")
    a = feat.abs().pow(p).mean(dim=1).flatten(1)
    return F.normalize(a, dim=1)


def attention_transfer(student: torch.Tensor, teacher: torch.Tensor, *, p: float = 2.0) -> torch.Tensor:
    """Attention transfer: ``mean_{b,ij} (Q_S - Q_T)^2`` with Q from :func:`attention_map`.

    Channel counts may differ; spatial sizes must match.
    """
    if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
        raise ValueError(f"attention_transfer: spatial shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    return (attention_map(student, p) - attention_map(teacher.detach(), p)).pow(2).mean()


def channel_wise_distillation(student: torch.Tensor, teacher: torch.Tensor, *, tau: float = 1.0) -> torch.Tensor:
    """CWD (Shu et al. 2021): per channel a softmax over the H*W positions with temperature
    ``tau``; ``tau^2 * KL(p_T || p_S)`` summed over positions, averaged over B*C.

    ``student``/``teacher``: (B, C, H, W), same shape (adapt the student channels first).
    """
    _check_same_shape(student, teacher, "channel_wise_distillation")
    b, c = student.shape[:2]
    s = student.reshape(b * c, -1) / tau
    t = teacher.detach().reshape(b * c, -1) / tau
    log_pt = F.log_softmax(t, dim=1)
    kl = (log_pt.exp() * (log_pt - F.log_softmax(s, dim=1))).sum(dim=1)
    return kl.mean() * (tau * tau)


AFFINITY_EPS = 1e-4


def cosine_affinity(feat: torch.Tensor, *, eps: float = AFFINITY_EPS) -> torch.Tensor:
    """(..., N, C) features -> (..., N, N) cosine-similarity matrix ``f_i . f_j`` of the rows
    ``f = feat / max(|feat|, eps)``.

    Numerically safe: a row shorter than ``eps`` (e.g. an all-zero feature after a ReLU) is
    scaled by ``1 / eps`` instead of its own length, so its affinities are ~0 and the gradient
    through it is bounded by ``1 / eps`` times the upstream gradient (with ``eps = 1e-12``, as
    before, a zero row got gradients ~1e12 times the upstream gradient). Rows of length >= eps
    are normalised exactly.
    """
    f = F.normalize(feat, dim=-1, eps=eps)
    return f @ f.transpose(-1, -2)


def affinity_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Relation / affinity distillation: ``mean((cos(S) - cos(T))^2)`` between the N x N
    cosine-affinity matrices (:func:`cosine_affinity`, safe for zero or tiny feature vectors).
    Inputs (..., N, C_s) and (..., N, C_t): channels may differ.

    (B, C, H, W) maps are accepted too and treated as N = H*W items per sample.
    """
    if student.ndim == 4:
        student = student.flatten(2).transpose(1, 2)
        teacher = teacher.flatten(2).transpose(1, 2)
    if student.shape[:-1] != teacher.shape[:-1]:
        raise ValueError(f"affinity_loss: item shapes differ: {tuple(student.shape)} vs {tuple(teacher.shape)}")
    return (cosine_affinity(student) - cosine_affinity(teacher.detach())).pow(2).mean()


class KLDivLoss(nn.Module):
    """Term wrapper of :func:`kl_div_loss`."""

    def __init__(self, *, temperature: float = 1.0, dim: int = 1):
        super().__init__()
        self.temperature, self.dim = float(temperature), int(dim)

    def forward(self, student, teacher, ctx=None):
        return kl_div_loss(student, teacher, temperature=self.temperature, dim=self.dim)


class MSELoss(nn.Module):
    """Term wrapper of :func:`fitnet_mse`."""

    def forward(self, student, teacher, ctx=None):
        return fitnet_mse(student, teacher)


class AttentionTransferLoss(nn.Module):
    """Term wrapper of :func:`attention_transfer`."""

    def __init__(self, *, p: float = 2.0):
        super().__init__()
        self.p = float(p)

    def forward(self, student, teacher, ctx=None):
        return attention_transfer(student, teacher, p=self.p)


class CWDLoss(nn.Module):
    """Term wrapper of :func:`channel_wise_distillation`."""

    def __init__(self, *, tau: float = 1.0):
        super().__init__()
        self.tau = float(tau)

    def forward(self, student, teacher, ctx=None):
        return channel_wise_distillation(student, teacher, tau=self.tau)


class AffinityLoss(nn.Module):
    """Term wrapper of :func:`affinity_loss`."""

    def forward(self, student, teacher, ctx=None):
        return affinity_loss(student, teacher)
