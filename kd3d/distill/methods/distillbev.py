"""DistillBEV (Wang et al., ICCV 2023): region-decomposed, attention-weighted multi-level BEV
feature imitation plus a spatial term.

Per level (a backbone stage or the head input), with FS' the adapted student map resampled to
the teacher grid and FT the teacher map (B, C, H, W)::

    L = 1/B sum_{b,c,i,j} (FS' - FT)^2 * A * [a_fg * max(sqrt(A_cell / A_box), 1/N_bg) * G
                                              + a_bg / N_bg * BG + a_fp / N_fp * FP]
    L_sp = 1/B sum_{b,i,j} |mean_c FT - conv3x3(mean_c FS')|          (weighted by a_sp)

* G: cells whose centre lies inside a GT box (A_box: footprint l*w of the smallest such box).
* FP: teacher false positives outside G: ``max_c sigmoid(teacher heatmap) > 0.1`` and GT
  Gaussian heatmap (min overlap 0.1, radius at least 2 as in the authors' code) ``< 0.1``.
  BG: everything else. N_bg, N_fp per sample.
* A = (P_T + P_S) / 2, ``P(F) = H*W softmax_ij(mean_c |F| / 0.5)``, without gradient.
* The FP part is further multiplied per channel by the teacher channel attention
  ``C * softmax_c(mean_ij |FT| / 0.5)`` (the authors' code; the paper's formula omits it;
  ``channel_attention=False`` drops it).

Paper / authors' code / kd3d differences: ``docs/methods.md`` (DistillBEV section).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.distill.adapters import ChannelAdapter
from kd3d.distill.bev_targets import boxes_cell_masks, draw_gaussian_heatmap
from kd3d.distill.distiller import DistillTerm, inherit_head
from kd3d.distill.methods import MethodDescriptor, MethodMaps
from kd3d.distill.methods.bevdistill import _grids, to_teacher_grid
from kd3d.distill.specs import spec_channels

__all__ = ["DistillBEVFeatureLoss", "DistillBEVSpatialLoss", "distillbev_terms", "distillbev_regions",
           "spatial_attention", "channel_attention", "inherit_head"]


def spatial_attention(feat: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """``P(F) = H*W * softmax_ij(mean_c |F| / tau)``: (B, C, H, W) -> (B, H, W), no gradient."""
    with torch.no_grad():
        b, _, h, w = feat.shape
        a = feat.detach().abs().mean(dim=1).reshape(b, -1) / tau
        return (h * w * torch.softmax(a, dim=1)).reshape(b, h, w)


def channel_attention(feat: torch.Tensor, tau: float = 0.5) -> torch.Tensor:
    """``C * softmax_c(mean_ij |F| / tau)``: (B, C, H, W) -> (B, C), no gradient (sums to C)."""
    with torch.no_grad():
        c = feat.shape[1]
        return c * torch.softmax(feat.detach().abs().mean(dim=(2, 3)) / tau, dim=1)


def distillbev_regions(boxes: torch.Tensor, grid, teacher_score: torch.Tensor | None, *,
                       fp_thresh: float = 0.1, gt_thresh: float = 0.1, gt_min_overlap: float = 0.1,
                       gt_min_radius: int = 2):
    """Region decomposition of one sample on ``grid``.

    The GT heatmap that keeps FP away from objects uses radius ``max(gt_min_radius, floor(r))``
    (2: the authors' CenterPoint target heatmap).

    ``boxes`` (M, 9) LiDAR frame; ``teacher_score`` (H, W) ``max_c sigmoid(heatmap)`` on this
    grid or None (no FP region). Returns dict of (H, W) tensors: ``fg`` bool, ``fp`` bool,
    ``bg`` bool, ``fg_scale`` float ``max(sqrt(A_cell / A_box), 1/N_bg)`` on fg (0 elsewhere),
    and the counts ``n_bg``, ``n_fp`` (at least 1).
    """
    inside, box_area = boxes_cell_masks(boxes.detach().cpu(), grid)
    if teacher_score is not None:
        gt_heat = draw_gaussian_heatmap(boxes.detach().cpu(), grid, min_overlap=gt_min_overlap,
                                        min_radius=gt_min_radius)
        fp = (teacher_score.detach().cpu() > fp_thresh) & (gt_heat < gt_thresh) & ~inside
    else:
        fp = torch.zeros_like(inside)
    bg = ~inside & ~fp
    n_bg = max(int(bg.sum()), 1)
    n_fp = max(int(fp.sum()), 1)
    cell_area = grid.dx * grid.dy
    scale = torch.where(inside, torch.sqrt(cell_area / box_area).clamp(min=1.0 / n_bg), torch.zeros_like(box_area))
    return {"fg": inside, "fp": fp, "bg": bg, "fg_scale": scale, "n_bg": n_bg, "n_fp": n_fp}


class DistillBEVFeatureLoss(nn.Module):
    """The region/attention-weighted feature term of one level (see the module docstring).

    ``student``: adapted (B, C_t, H_s, W_s); ``teacher``: (B, C_t, H, W). The teacher heatmap
    (``ctx.teacher_out.feats['heatmap']``) is resized to the level (same metric range).
    ``channel_attention`` (default on, as the authors' code): the FP part is weighted per channel
    by :func:`channel_attention` of the teacher map; ``gt_min_radius``: see
    :func:`distillbev_regions`.
    """

    def __init__(self, *, a_fg: float = 6e-3, a_bg: float = 4e-2, a_fp: float = 6e-2, attn_tau: float = 0.5,
                 fp_thresh: float = 0.1, gt_min_overlap: float = 0.1, gt_min_radius: int = 2,
                 channel_attention: bool = True):
        super().__init__()
        self.a_fg, self.a_bg, self.a_fp = float(a_fg), float(a_bg), float(a_fp)
        self.attn_tau, self.fp_thresh, self.gt_min_overlap = float(attn_tau), float(fp_thresh), float(gt_min_overlap)
        self.gt_min_radius, self.channel_attention = int(gt_min_radius), bool(channel_attention)

    @property
    def extra_teacher_keys(self) -> tuple[str, ...]:
        """Features read from ``ctx.teacher_out`` besides the term's key (for the teacher cache)."""
        return ("heatmap",) if self.a_fp else ()

    def region_weights(self, student: torch.Tensor, teacher: torch.Tensor, ctx) -> torch.Tensor:
        """(B, H, W) per-cell weight ``A * [a_fg s G + a_bg/N_bg BG + a_fp/N_fp FP]`` (without the
        FP part's channel attention)."""
        main, fp = self._split_weights(student, teacher, ctx)
        return main + fp

    def _split_weights(self, student: torch.Tensor, teacher: torch.Tensor, ctx):
        """(B, H, W) ``A * [a_fg s G + a_bg/N_bg BG]`` and (B, H, W) ``A * a_fp/N_fp FP``."""
        _, tg = _grids(ctx, teacher.shape, teacher.shape)
        heat = ctx.teacher_out.feats.get("heatmap") if self.a_fp else None
        score = None
        if heat is not None:
            score = torch.sigmoid(heat.detach().float()).max(dim=1, keepdim=True).values
            if score.shape[-2:] != teacher.shape[-2:]:
                score = F.interpolate(score, size=teacher.shape[-2:], mode="bilinear", align_corners=False)
            score = score[:, 0]
        weights, fp_weights = [], []
        for b, boxes in enumerate(ctx.batch.gt_boxes):
            r = distillbev_regions(boxes, tg, None if score is None else score[b], fp_thresh=self.fp_thresh,
                                   gt_min_overlap=self.gt_min_overlap, gt_min_radius=self.gt_min_radius)
            weights.append(self.a_fg * r["fg_scale"] + self.a_bg / r["n_bg"] * r["bg"].float())
            fp_weights.append(self.a_fp / r["n_fp"] * r["fp"].float())
        attn = 0.5 * (spatial_attention(teacher, self.attn_tau) + spatial_attention(student, self.attn_tau))
        as_t = dict(device=teacher.device, dtype=teacher.dtype)
        return torch.stack(weights).to(**as_t) * attn, torch.stack(fp_weights).to(**as_t) * attn

    def forward(self, student, teacher, ctx):
        student = to_teacher_grid(student, teacher, ctx)
        main, fp = self._split_weights(student, teacher, ctx)
        fp = fp[:, None]  # (B, 1, H, W)
        if self.a_fp and self.channel_attention:
            fp = fp * channel_attention(teacher, self.attn_tau)[:, :, None, None]  # (B, C, H, W)
        w = main[:, None] + fp
        return ((student - teacher.detach()).pow(2) * w).sum() / teacher.shape[0]

    def extra_repr(self):
        return (f"a_fg={self.a_fg}, a_bg={self.a_bg}, a_fp={self.a_fp}, attn_tau={self.attn_tau}, "
                f"gt_min_radius={self.gt_min_radius}, channel_attention={self.channel_attention}")


class DistillBEVSpatialLoss(nn.Module):
    """``1/B sum_{b,ij} |mean_c FT - conv3x3(mean_c FS')|`` with a learned 1->1 3x3 conv."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, student, teacher, ctx):
        student = to_teacher_grid(student, teacher, ctx)
        s = self.conv(student.mean(dim=1, keepdim=True))
        return (teacher.detach().mean(dim=1, keepdim=True) - s).abs().sum() / teacher.shape[0]


DEFAULT_LEVELS = ("bev_stage1", "bev_stage2", "bev_neck")


def distillbev_terms(*, levels=None, student_specs: dict | None = None, teacher_specs: dict | None = None,
                     a_fg: float = 6e-3,
                     a_bg: float = 4e-2, a_fp: float = 6e-2, a_sp: float = 2.5e-3, fp_levels=("bev_neck",),
                     attn_tau: float = 0.5, channel_attention: bool = True, gt_min_radius: int = 2):
    """DistillBEV terms.

    ``levels``: the distilled feature keys (default :data:`DEFAULT_LEVELS`: two backbone stages
    and the head input), each level's adapter channels read from the models' ``student_specs`` /
    ``teacher_specs``; without models, a mapping key -> (student channels, teacher channels)
    (see :mod:`kd3d.distill.specs`). The FP region (weight ``a_fp``) is used on ``fp_levels`` (the head level by
    default, as the paper states a_fp for it); set ``a_sp=0`` to drop the spatial terms.
    ``channel_attention=False`` drops the teacher channel attention on the FP part (the paper's
    formula; the authors' code has it); ``gt_min_radius`` is the GT heatmap's minimum radius for
    the FP region (2, the authors' code). Head inheritance: ``DistillConfig.inherit_head =
    "task_heads"`` (or :func:`inherit_head(student, teacher, mode="task_heads")`) before training.
    Returns ``(terms, adapters)``.
    """
    if levels is None:
        levels = DEFAULT_LEVELS
    if isinstance(levels, str) or not levels:
        raise ValueError(f"distillbev: levels must be a list of feature keys (or, without models, a mapping key -> "
                         f"(student channels, teacher channels)), got {levels!r}")
    explicit = dict(levels) if isinstance(levels, dict) else {key: (None, None) for key in levels}
    terms, adapters = [], {}
    for key, (cs, ct) in explicit.items():
        name = f"distillbev_{key}"
        cs = spec_channels(student_specs, key, cs, side="student", method="distillbev")
        ct = spec_channels(teacher_specs, key, ct, side="teacher", method="distillbev")
        adapters[name] = ChannelAdapter(cs, ct)
        fp = a_fp if key in fp_levels else 0.0
        terms.append(DistillTerm(f"distillbev/feat_{key}", key, key,
                                 DistillBEVFeatureLoss(a_fg=a_fg, a_bg=a_bg, a_fp=fp, attn_tau=attn_tau,
                                                       channel_attention=channel_attention,
                                                       gt_min_radius=gt_min_radius), name, 1.0))
        if a_sp:
            terms.append(DistillTerm(f"distillbev/sp_{key}", key, key, DistillBEVSpatialLoss(), name, a_sp))
    return terms, adapters


# ----------------------------------------------------------------------------- registry entry
def distillbev_maps(ctx):
    """Visualisation hook on ``ctx.grid``: the regions (0 background, 1 GT foreground, 2 teacher
    false positive; FP from the teacher heatmap as the feature term reads it), the foreground
    scale ``max(sqrt(A_cell / A_box), 1/N_bg)`` and, given the shown maps, the attention
    ``A = (P_T + P_S) / 2`` (``P_T`` alone when the student map is on another grid)."""
    loss = (ctx.losses(DistillBEVFeatureLoss) or [DistillBEVFeatureLoss()])[0]
    score = None
    heat = ctx.teacher_out.feats.get("heatmap") if ctx.teacher_out is not None and loss.a_fp else None
    if heat is not None:
        score = torch.sigmoid(heat[ctx.batch_index: ctx.batch_index + 1].detach().float().cpu()).amax(1, keepdim=True)
        if score.shape[-2:] != ctx.grid.shape:
            score = F.interpolate(score, size=ctx.grid.shape, mode="bilinear", align_corners=False)
        score = score[0, 0]
    r = distillbev_regions(ctx.boxes(), ctx.grid, score, fp_thresh=loss.fp_thresh, gt_min_overlap=loss.gt_min_overlap,
                           gt_min_radius=loss.gt_min_radius)
    maps = {"distillbev/regions (0 bg, 1 fg, 2 fp)": r["fg"].long() + 2 * r["fp"].long(),
            "distillbev/fg scale": r["fg_scale"]}
    t, s = ctx.teacher_feat, ctx.student_feat
    if t is not None and tuple(t.shape[-2:]) == ctx.grid.shape:
        att = spatial_attention(torch.as_tensor(t).float()[None].cpu(), loss.attn_tau)[0]
        if s is not None and tuple(s.shape[-2:]) == ctx.grid.shape:
            att = 0.5 * (att + spatial_attention(torch.as_tensor(s).float()[None].cpu(), loss.attn_tau)[0])
        maps["distillbev/attention"] = att
    return MethodMaps(maps)


DESCRIPTOR = MethodDescriptor("distillbev", distillbev_terms, "DistillBEV: region- and attention-weighted "
                              "multi-level BEV imitation plus a spatial term (Wang et al., ICCV 2023)",
                              distillbev_maps)
