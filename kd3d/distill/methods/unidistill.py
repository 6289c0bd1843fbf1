"""UniDistill (Zhou et al., CVPR 2023): keypoint feature, relation and response distillation
between any two BEV detectors (LiDAR, camera, fusion) in either direction.

Nine BEV keypoints per GT box (:func:`kd3d.distill.bev_targets.box_keypoints`: 4 corners, the
centre, 4 edge midpoints), read by bilinear sampling on each map's own metric grid:

* feature  ``1/N sum_n 1/(9C) sum_k |FS'(k) - FT(k)|_1`` on the low-level BEV map (adapted student)
* relation ``1/N sum_n 1/81 sum_{k,k'} |cos(FS(k), FS(k')) - cos(FT(k), FT(k'))|`` on the
  high-level map (channels may differ: no adapter)
* response Gaussian-weighted (min overlap 0.7, radius ``max(0, floor(r))``)
  ``|sigmoid(max_c hS) - sigmoid(max_c hT / 2)| + mean_r |regS - regT|``, normalised by the
  Gaussian sum (the regression part is a MEAN over the regression channels of all tasks).

``swap_keypoint_xy=True`` reproduces the authors' code, which samples the keypoints with x and y
swapped (mirrored across the grid diagonal); the default samples the paper's true keypoints.
Paper / authors' code / kd3d differences: ``docs/methods.md`` (UniDistill section).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.distill.adapters import ChannelAdapter, sample_bev
from kd3d.distill.bev_targets import batch_gaussian_heatmaps, box_keypoints, reg_channel_mask
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.losses import cosine_affinity
from kd3d.distill.methods import MethodDescriptor, MethodMaps
from kd3d.distill.methods.bevdistill import _grids, to_teacher_grid
from kd3d.distill.specs import spec_channels

# (teacher modality, student modality) -> (feature, relation, response) weights from the paper.
UNIDISTILL_WEIGHTS = {
    ("lidar", "camera"): (100.0, 40.0, 10.0),
    ("fusion", "camera"): (10.0, 5.0, 10.0),
    ("camera", "lidar"): (10.0, 5.0, 1.0),
    ("fusion", "lidar"): (10.0, 1.0, 10.0),
}


def swap_keypoints_xy(kp: torch.Tensor, grid) -> torch.Tensor:
    """The authors' x/y swap: (..., 2) metric xy -> the point whose normalised grid coordinates
    are swapped, ``u' = v, v' = u`` with ``u = (x - xmin) / (xmax - xmin)``, ``v = (y - ymin) /
    (ymax - ymin)`` (on a square range centred at 0 simply ``(y, x)``)."""
    u = (kp[..., 0] - grid.xmin) / (grid.xmax - grid.xmin)
    v = (kp[..., 1] - grid.ymin) / (grid.ymax - grid.ymin)
    return torch.stack([grid.xmin + v * (grid.xmax - grid.xmin), grid.ymin + u * (grid.ymax - grid.ymin)], dim=-1)


def sample_keypoints(student: torch.Tensor, teacher: torch.Tensor, ctx, *, swap_xy: bool = False):
    """Bilinear features at the nine keypoints of every GT box whose centre is in range.

    ``student`` (B, C_s, H_s, W_s), ``teacher`` (B, C_t, H_t, W_t), each on its own grid (same
    metric range). ``swap_xy``: sample at :func:`swap_keypoints_xy` of the keypoints on each map
    (the authors' code). Returns ``(fs (N, 9, C_s), ft (N, 9, C_t))``, N = instances of the batch.
    """
    sg, tg = _grids(ctx, student.shape, teacher.shape)
    fs, ft = [], []
    for b, boxes in enumerate(ctx.batch.gt_boxes):
        if not len(boxes):
            continue
        c = boxes[:, :2]
        keep = (c[:, 0] >= tg.xmin) & (c[:, 0] < tg.xmax) & (c[:, 1] >= tg.ymin) & (c[:, 1] < tg.ymax)
        if not bool(keep.any()):
            continue
        kp = box_keypoints(boxes[keep].detach().cpu())  # (M, 9, 2) float64
        m = kp.shape[0]
        kp_s, kp_t = (swap_keypoints_xy(kp, sg), swap_keypoints_xy(kp, tg)) if swap_xy else (kp, kp)
        kp_s, kp_t = (k.to(student.device, torch.float32).reshape(1, -1, 2) for k in (kp_s, kp_t))
        fs.append(sample_bev(student[b:b + 1], sg, kp_s)[0].reshape(m, 9, -1))
        ft.append(sample_bev(teacher[b:b + 1].detach(), tg, kp_t)[0].reshape(m, 9, -1))
    if not fs:
        return None, None
    return torch.cat(fs), torch.cat(ft)


class KeypointFeatureLoss(nn.Module):
    """Feature term: mean absolute difference of the adapted student and teacher features at the
    keypoints (= ``1/N sum_n 1/(9C) sum_k |.|_1``); 0 without instances.
    ``swap_keypoint_xy``: the authors' swapped keypoints (see the module docstring)."""

    def __init__(self, *, swap_keypoint_xy: bool = False):
        super().__init__()
        self.swap_keypoint_xy = bool(swap_keypoint_xy)

    def extra_repr(self):
        return f"swap_keypoint_xy={self.swap_keypoint_xy}"

    def forward(self, student, teacher, ctx):
        fs, ft = sample_keypoints(student, teacher, ctx, swap_xy=self.swap_keypoint_xy)
        if fs is None:
            return student.sum() * 0.0
        if fs.shape != ft.shape:
            raise ValueError(f"unidistill feature term: adapted student {fs.shape[-1]} vs teacher {ft.shape[-1]} channels")
        return (fs - ft).abs().mean()


class KeypointRelationLoss(KeypointFeatureLoss):
    """Relation term: mean |cos_S - cos_T| over each instance's 9 x 9 cosine-similarity matrix
    (:func:`kd3d.distill.losses.cosine_affinity`: safe for all-zero keypoint features).
    ``swap_keypoint_xy`` as for :class:`KeypointFeatureLoss`."""

    def forward(self, student, teacher, ctx):
        fs, ft = sample_keypoints(student, teacher, ctx, swap_xy=self.swap_keypoint_xy)
        if fs is None:
            return student.sum() * 0.0
        return (cosine_affinity(fs) - cosine_affinity(ft)).abs().mean()


class ResponseLoss(nn.Module):
    """Response term on the head outputs ``(heatmap (B, K, H, W) logits, reg (B, R, H, W))``.

    Weights ``w``: class-agnostic Gaussian of the GT boxes on the teacher grid (``min_overlap``
    0.7, radius ``max(min_radius, floor(r))`` with ``min_radius`` 0: one cell for small boxes);
    ``L = sum w (|sigmoid(max_c hS) - sigmoid(max_c hT / 2)| + mean_r |rS - rT|) / sum w``, the
    mean over the R regression channels of all tasks (= the mean over tasks of each task's
    channel mean, as in the authors' code). Student maps are resampled to the teacher grid when
    the grids differ. ``distill_velocity=False`` leaves the velocity channels of ``reg`` out (the
    mean is then over the remaining channels; single-frame students).
    """

    def __init__(self, *, min_overlap: float = 0.7, min_radius: int = 0, teacher_logit_scale: float = 0.5,
                 distill_velocity: bool = True):
        super().__init__()
        self.min_overlap, self.teacher_logit_scale = float(min_overlap), float(teacher_logit_scale)
        self.min_radius = int(min_radius)
        self.distill_velocity = bool(distill_velocity)

    def forward(self, student, teacher, ctx):
        s_heat, s_reg = student
        t_heat, t_reg = teacher
        s_heat = to_teacher_grid(s_heat, t_heat, ctx)
        s_reg = to_teacher_grid(s_reg, t_reg, ctx)
        _, tg = _grids(ctx, t_heat.shape, t_heat.shape)
        w = batch_gaussian_heatmaps(ctx.batch.gt_boxes, tg, min_overlap=self.min_overlap, min_radius=self.min_radius,
                                    device=t_heat.device)[:, 0].to(s_heat.dtype)
        hs = torch.sigmoid(s_heat.max(dim=1).values)
        ht = torch.sigmoid(t_heat.detach().max(dim=1).values * self.teacher_logit_scale)
        reg_diff = (s_reg - t_reg.detach()).abs()
        if self.distill_velocity:
            reg_term = reg_diff.mean(dim=1)
        else:
            mask = reg_channel_mask(reg_diff.shape[1], velocity=False, like=reg_diff)
            reg_term = (reg_diff * mask).sum(dim=1) / mask.sum()
        per_cell = (hs - ht).abs() + reg_term
        return (w * per_cell).sum() / w.sum().clamp(min=1.0)

    def extra_repr(self):
        return (f"min_overlap={self.min_overlap}, min_radius={self.min_radius}, "
                f"teacher_logit_scale={self.teacher_logit_scale}, distill_velocity={self.distill_velocity}")


def unidistill_terms(*, teacher_modality: str, student_modality: str, student_specs: dict | None = None,
                     teacher_specs: dict | None = None, student_channels: int | None = None,
                     teacher_channels: int | None = None, feature_key: str = "bev", relation_key: str = "bev_neck",
                     weights: tuple[float, float, float] | None = None, response: bool = True,
                     distill_velocity: bool = True, swap_keypoint_xy: bool = False):
    """UniDistill terms for a (teacher, student) modality pair in ``UNIDISTILL_WEIGHTS``.

    The channels of ``feature_key`` (the feature term's 1x1 adapter) come from the models'
    ``student_specs`` / ``teacher_specs`` (``student_channels`` / ``teacher_channels`` only when
    building without models, see :mod:`kd3d.distill.specs`); ``weights`` overrides (feature, relation, response);
    ``distill_velocity=False`` keeps the response term off the velocity channels (single-frame
    students); ``swap_keypoint_xy=True`` samples the keypoints as the authors' code does (x and y
    swapped; for reproduction studies). Returns ``(terms, adapters)``.
    """
    pair = (teacher_modality, student_modality)
    if weights is None:
        if pair not in UNIDISTILL_WEIGHTS:
            raise ValueError(f"unidistill: unknown modality pair teacher={teacher_modality!r} "
                             f"student={student_modality!r}; known: {sorted(UNIDISTILL_WEIGHTS)}")
        weights = UNIDISTILL_WEIGHTS[pair]
    w_feat, w_rel, w_resp = weights
    student_channels = spec_channels(student_specs, feature_key, student_channels, side="student",
                                     method="unidistill")
    teacher_channels = spec_channels(teacher_specs, feature_key, teacher_channels, side="teacher",
                                     method="unidistill")
    adapters = {"unidistill_feature": ChannelAdapter(student_channels, teacher_channels)}
    terms = [
        DistillTerm("unidistill/feature", feature_key, feature_key, KeypointFeatureLoss(swap_keypoint_xy=swap_keypoint_xy),
                    "unidistill_feature", w_feat),
        DistillTerm("unidistill/relation", relation_key, relation_key,
                    KeypointRelationLoss(swap_keypoint_xy=swap_keypoint_xy), None, w_rel),
    ]
    if response:
        terms.append(DistillTerm("unidistill/response", ("heatmap", "reg"), ("heatmap", "reg"), ResponseLoss(distill_velocity=distill_velocity),
                                 None, w_resp))
    return terms, adapters


# ----------------------------------------------------------------------------- registry entry
def keypoint_read_weights(kp: torch.Tensor, grid) -> torch.Tensor:
    """(H, W) sum over the (N, 2) metric keypoints of the bilinear weights with which
    :func:`~kd3d.distill.adapters.sample_bev` reads each cell of ``grid`` (cell centres at
    ``(i + 0.5) * d``; points outside read zeros)."""
    out = torch.zeros(grid.shape, dtype=torch.float64)
    u = (kp[:, 0].double() - grid.xmin) / grid.dx - 0.5
    v = (kp[:, 1].double() - grid.ymin) / grid.dy - 0.5
    u0, v0 = u.floor(), v.floor()
    for du in (0, 1):
        for dv in (0, 1):
            cu, cv = u0 + du, v0 + dv
            w = (1 - (u - cu).abs()) * (1 - (v - cv).abs())
            ok = (cu >= 0) & (cu < grid.nx) & (cv >= 0) & (cv < grid.ny)
            out.index_put_((cv[ok].long(), cu[ok].long()), w[ok], accumulate=True)
    return out


def unidistill_maps(ctx):
    """Visualisation hook on ``ctx.grid``: the nine keypoints of every in-range GT box (as the
    feature term samples them, swapped when it reproduces the authors' x/y swap), the bilinear
    weight with which each cell is read at them, and the response term's Gaussian weight."""
    feat = (ctx.losses(KeypointFeatureLoss) or [KeypointFeatureLoss()])[0]
    resp = (ctx.losses(ResponseLoss) or [ResponseLoss()])[0]
    boxes, g = ctx.boxes(), ctx.grid
    c = boxes[:, :2]
    keep = (c[:, 0] >= g.xmin) & (c[:, 0] < g.xmax) & (c[:, 1] >= g.ymin) & (c[:, 1] < g.ymax)
    kp = box_keypoints(boxes[keep]).reshape(-1, 2)
    if feat.swap_keypoint_xy:
        kp = swap_keypoints_xy(kp, g)
    weight = batch_gaussian_heatmaps([boxes], g, min_overlap=resp.min_overlap,
                                     min_radius=resp.min_radius)[0, 0]
    return MethodMaps({"unidistill/keypoint reads": keypoint_read_weights(kp, g), "unidistill/response weight": weight},
                      keypoints=kp, overlay="9 keypoints per box")


DESCRIPTOR = MethodDescriptor("unidistill", unidistill_terms, "UniDistill: keypoint feature / relation and "
                              "Gaussian-weighted response distillation, any BEV modality pair (Zhou et al., CVPR 2023)",
                              unidistill_maps)
