"""BEVDistill (Chen et al., ICLR 2023): dense foreground imitation, sparse instance contrast and
prediction distillation, for camera (or any) BEV students of LiDAR/fusion teachers. What each
term computes against the paper and the authors' code: ``docs/methods.md`` (BEVDistill).

Dense term feature: ``head_shared``, the output of the CenterHead's shared 3x3 conv + BN + ReLU
on both sides (the authors give their DETR student an auxiliary CenterPoint heatmap head and
distil that conv's output); ``feature_key="bev_neck"`` distils the head input instead.
Instance locations: the authors sample both BEV maps at the student DETR decoder's reference
points; kd3d's dense students have no queries, so GT centres ('gt') or the student's heatmap
peaks ('pred') stand in for them.

Grids: student maps are read on ``ctx.student_grid``'s metric range and teacher maps on
``ctx.teacher_grid``'s (the models' ``bev_grid``); a map of another resolution (a backbone
stage) gets the grid with the same range and its own shape. When the grids differ, the student
map is resampled explicitly onto the teacher grid (:func:`kd3d.distill.adapters.resample_map`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.distill.adapters import ChannelAdapter, grid_for_map, resample_map, sample_bev
from kd3d.distill.bev_targets import batch_gaussian_heatmaps, draw_gaussian_heatmap, reg_channel_mask
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.specs import spec_channels
from kd3d.distill.methods import MethodDescriptor, MethodMaps


def _grids(ctx, s_shape, t_shape):
    if ctx.teacher_grid is None or ctx.student_grid is None:
        raise ValueError("BEV distillation needs student.bev_grid and teacher.bev_grid (BEVGrid); got None")
    return grid_for_map(ctx.student_grid, s_shape), grid_for_map(ctx.teacher_grid, t_shape)


def to_teacher_grid(s: torch.Tensor, t: torch.Tensor, ctx) -> torch.Tensor:
    """Resample the student map ``s`` onto the teacher map's grid (no-op when they coincide)."""
    sg, tg = _grids(ctx, s.shape, t.shape)
    return resample_map(s, sg, tg)


class ForegroundGaussianMSE(nn.Module):
    """Dense term: per sample ``L_b = sum_{c,i,j} w (FS' - FT)^2 / max(sum_{i,j} w, 1)`` with ``w``
    the class-agnostic CenterPoint Gaussian of the sample's GT boxes on the teacher grid
    (``min_overlap``, radius >= ``min_radius``); ``batch_reduction="sample"`` (default, the
    authors' one sample per GPU averaged over GPUs) returns ``mean_b L_b``, ``"pooled"`` (kd3d
    before) ``sum_b num_b / max(sum_b den_b, 1)``.

    ``student``: adapted (B, C_t, H_s, W_s); ``teacher``: (B, C_t, H_t, W_t).
    """

    def __init__(self, *, min_overlap: float = 0.1, min_radius: int = 1, batch_reduction: str = "sample"):
        super().__init__()
        if batch_reduction not in ("sample", "pooled"):
            raise ValueError(f"ForegroundGaussianMSE: batch_reduction must be 'sample' or 'pooled', "
                             f"got {batch_reduction!r}")
        self.min_overlap, self.min_radius = float(min_overlap), int(min_radius)
        self.batch_reduction = batch_reduction

    def forward(self, student, teacher, ctx):
        student = to_teacher_grid(student, teacher, ctx)
        _, tg = _grids(ctx, student.shape, teacher.shape)
        w = batch_gaussian_heatmaps(ctx.batch.gt_boxes, tg, min_overlap=self.min_overlap,
                                    min_radius=self.min_radius, device=teacher.device).to(teacher.dtype)
        num = (w * (student - teacher.detach()).pow(2)).flatten(1).sum(1)  # (B,)
        den = w.flatten(1).sum(1)
        if self.batch_reduction == "pooled":
            return num.sum() / den.sum().clamp(min=1.0)
        return (num / den.clamp(min=1.0)).mean()

    def extra_repr(self):
        return f"min_overlap={self.min_overlap}, min_radius={self.min_radius}, batch_reduction={self.batch_reduction}"


def _projection(kind: str, cin: int, proj_dim: int, hidden: int) -> nn.Sequential:
    """'bevdistill': Linear(cin, d), then Linear(d, d) - BatchNorm1d - ReLU - Linear(d, d) (the
    authors' heads, d = ``proj_dim``); 'mlp': Linear(cin, hidden) - ReLU - Linear(hidden, d)."""
    if kind == "bevdistill":
        return nn.Sequential(nn.Linear(cin, proj_dim), nn.Linear(proj_dim, proj_dim), nn.BatchNorm1d(proj_dim),
                             nn.ReLU(inplace=True), nn.Linear(proj_dim, proj_dim))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, proj_dim))
    raise ValueError(f"InstanceContrastiveLoss: projection must be 'bevdistill' or 'mlp', got {kind!r}")


def instance_centres(gt_boxes: list, grid) -> list[torch.Tensor]:
    """Per sample the (Mi, 2) xy of the GT centres inside ``grid``'s range."""
    out = []
    for boxes in gt_boxes:
        xy = boxes[:, :2].float()
        keep = (xy[:, 0] >= grid.xmin) & (xy[:, 0] < grid.xmax) & (xy[:, 1] >= grid.ymin) & (xy[:, 1] < grid.ymax)
        out.append(xy[keep])
    return out


class InstanceContrastiveLoss(nn.Module):
    """Sparse instance term: sample both BEV maps at the N instance locations of the batch
    (bilinear, each on its own grid), project with a per-side head, L2-normalise (zS, zT: (N, d))
    and apply InfoNCE with the teacher embeddings as anchors: ``CE(zT @ zS^T / temperature,
    diag)`` (teacher instance i's positive is student instance i, every other student instance a
    negative). ``anchor="student"`` (kd3d before) uses ``CE(zS @ zT^T / temperature, diag)``.
    0 when the batch has fewer than 2 instances (one instance has no negative: CE = 0).

    ``projection``: 'bevdistill' (default) Linear(C, proj_dim) then Linear-BatchNorm1d-ReLU-Linear
    to ``proj_dim`` (512), or 'mlp' (kd3d before: Linear(C, hidden)-ReLU-Linear to proj_dim).

    ``locations``: 'gt' (GT box centres), 'pred' (the student's predicted centres: up to
    ``max_pred`` 3x3 local maxima of ``max_c sigmoid(student heatmap)`` above ``pred_thresh``,
    the dense-head analogue of BEVDistill's student queries) or 'both'.
    The projection heads are trained with the student and dropped at export.
    """

    def __init__(self, *, student_channels: int, teacher_channels: int, proj_dim: int = 512,
                 hidden: int = 256, temperature: float = 0.07, locations: str = "gt", max_pred: int = 32,
                 pred_thresh: float = 0.1, anchor: str = "teacher", projection: str = "bevdistill"):
        super().__init__()
        if locations not in ("gt", "pred", "both"):
            raise ValueError(f"InstanceContrastiveLoss: locations must be gt/pred/both, got {locations!r}")
        if anchor not in ("teacher", "student"):
            raise ValueError(f"InstanceContrastiveLoss: anchor must be 'teacher' or 'student', got {anchor!r}")
        self.student_proj = _projection(projection, student_channels, proj_dim, hidden)
        self.teacher_proj = _projection(projection, teacher_channels, proj_dim, hidden)
        self.temperature, self.anchor, self.projection = float(temperature), anchor, projection
        self.locations, self.max_pred, self.pred_thresh = locations, int(max_pred), float(pred_thresh)

    def _locations(self, ctx, tg) -> list[torch.Tensor]:
        centres = instance_centres(ctx.batch.gt_boxes, tg) if self.locations in ("gt", "both") else None
        if self.locations == "gt":
            return centres
        heat = ctx.student_out.feats.get("heatmap")
        if heat is None:
            raise KeyError("InstanceContrastiveLoss(locations='pred') needs the student's 'heatmap' feature")
        hg = grid_for_map(ctx.student_grid, heat.shape)
        peaks = teacher_peaks(heat, score_thresh=self.pred_thresh, max_peaks=self.max_pred)
        out = []
        for b in range(heat.shape[0]):
            rows, cols = torch.nonzero(peaks[b] > 0, as_tuple=True)
            xy = torch.stack([hg.xmin + (cols.double() + 0.5) * hg.dx, hg.ymin + (rows.double() + 0.5) * hg.dy], 1)
            xy = xy.float().cpu()
            out.append(xy if centres is None else torch.cat([centres[b].cpu(), xy]))
        return out

    def forward(self, student, teacher, ctx):
        sg, tg = _grids(ctx, student.shape, teacher.shape)
        fs, ft = [], []
        for b, xy in enumerate(self._locations(ctx, tg)):
            if len(xy):
                xy = xy.to(student.device)
                fs.append(sample_bev(student[b:b + 1], sg, xy[None])[0])
                ft.append(sample_bev(teacher[b:b + 1].detach(), tg, xy[None])[0])
        if sum(len(f) for f in fs) < 2:  # keep the heads in the graph (DDP wants a gradient for each)
            return student.sum() * 0.0 + sum(p.sum() for p in self.parameters()) * 0.0
        zs = F.normalize(self.student_proj(torch.cat(fs)), dim=1)
        zt = F.normalize(self.teacher_proj(torch.cat(ft)), dim=1)
        logits = (zt @ zs.t() if self.anchor == "teacher" else zs @ zt.t()) / self.temperature
        return F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))

    def extra_repr(self):
        return (f"temperature={self.temperature}, locations={self.locations}, anchor={self.anchor}, "
                f"projection={self.projection}")


def teacher_peaks(heatmap_logits: torch.Tensor, *, score_thresh: float, max_peaks: int):
    """Teacher "boxes" of a CenterHead: local maxima (3x3) of ``max_c sigmoid(heatmap)`` above
    ``score_thresh``, top ``max_peaks`` per sample. Returns (B, H, W) score map with zeros
    everywhere except at the kept peaks."""
    score = torch.sigmoid(heatmap_logits.detach().float()).max(dim=1).values  # (B, H, W)
    peak = score == F.max_pool2d(score[:, None], 3, stride=1, padding=1)[:, 0]
    score = torch.where(peak & (score > score_thresh), score, torch.zeros_like(score))
    flat = score.flatten(1)
    k = min(max_peaks, flat.shape[1])
    top, idx = flat.topk(k, dim=1)
    kept = torch.zeros_like(flat).scatter_(1, idx, top)
    return kept.view_as(score)


class PredictionL1Loss(nn.Module):
    """Prediction term: teacher boxes (heatmap peaks, see :func:`teacher_peaks`) are matched to
    the student prediction at the same BEV cell (student maps resampled to the teacher grid);
    ``sum_peaks s_T^p * sum_r c_r |regS - regT|_r / sum_peaks s_T`` over the box parameters
    (offset, z, log dims, sin/cos yaw, velocity) with the teacher score ``s_T``.
    ``score_power=1`` (default) is the paper's weight ``s_T / sum s_T``; 2 reproduces the
    authors' code, which multiplies the box weights by the score twice (``s_T^2 / sum s_T``).
    Channel weights ``c_r``: 1, and ``velocity_weight`` (0.2, the authors' code weights) on the
    velocity channels; ``distill_velocity=False`` leaves them out (a single-frame student cannot
    see motion; copying a multi-sweep teacher's velocities only adds noise).

    ``student``/``teacher``: tuples ``(heatmap (B, K, H, W), reg (B, R, H, W))``.
    """

    def __init__(self, *, score_thresh: float = 0.1, max_peaks: int = 100, distill_velocity: bool = True,
                 velocity_weight: float = 0.2, score_power: int = 1):
        super().__init__()
        if score_power not in (1, 2):
            raise ValueError(f"PredictionL1Loss: score_power must be 1 (paper) or 2 (authors' code), "
                             f"got {score_power!r}")
        self.score_thresh, self.max_peaks = float(score_thresh), int(max_peaks)
        self.distill_velocity, self.velocity_weight = bool(distill_velocity), float(velocity_weight)
        self.score_power = int(score_power)

    def channel_weights(self, num_channels: int, like: torch.Tensor) -> torch.Tensor:
        """(1, R, 1, 1): 1 per box parameter, ``velocity_weight`` (or 0 without velocity) on
        channels 8 and 9 of every task."""
        static = reg_channel_mask(num_channels, velocity=False, like=like)
        vel = self.velocity_weight if self.distill_velocity else 0.0
        return static + vel * (1.0 - static)

    def forward(self, student, teacher, ctx):
        _, s_reg = student
        t_heat, t_reg = teacher
        s_reg = to_teacher_grid(s_reg, t_reg, ctx)
        w = teacher_peaks(t_heat, score_thresh=self.score_thresh, max_peaks=self.max_peaks).to(s_reg.dtype)
        diff = (s_reg - t_reg.detach()).abs() * self.channel_weights(s_reg.shape[1], s_reg)
        l1 = diff.sum(dim=1)  # (B, H, W)
        return (w.pow(self.score_power) * l1).sum() / w.sum().clamp(min=1e-6)

    def extra_repr(self):
        return (f"score_thresh={self.score_thresh}, max_peaks={self.max_peaks}, "
                f"distill_velocity={self.distill_velocity}, velocity_weight={self.velocity_weight}, "
                f"score_power={self.score_power}")


def bevdistill_terms(*, student_specs: dict | None = None, teacher_specs: dict | None = None,
                     student_channels: int | None = None, teacher_channels: int | None = None,
                     feature_key: str = "head_shared", instance_key: str = "bev_neck",
                     dense_weight: float = 0.01, instance_weight: float = 0.2, prediction_weight: float = 1.0,
                     temperature: float = 0.07, proj_dim: int = 512, hidden: int = 256,
                     min_overlap: float = 0.1, score_thresh: float = 0.1, max_peaks: int = 100,
                     instance_locations: str = "gt", distill_velocity: bool = True, velocity_weight: float = 0.2,
                     score_power: int = 1, anchor: str = "teacher", projection: str = "bevdistill",
                     batch_reduction: str = "sample", dense_adapter: bool | None = None):
    """BEVDistill terms (docs/methods.md): the dense term on ``feature_key`` (default
    ``head_shared``, the CenterHead's shared conv output; ``"bev_neck"`` distils the head input),
    the instance term on ``instance_key`` (default ``bev_neck``, the BEV map entering the head, as
    the authors' code), the prediction term on ``heatmap`` / ``reg``. Channel counts come from
    the models' ``student_specs`` / ``teacher_specs``; ``student_channels`` / ``teacher_channels``
    only when building without models (then they are the counts of both keys, see
    :mod:`kd3d.distill.specs`).

    Returns ``(terms, adapters)``. A weight of 0 drops its term. ``dense_adapter``: a 1x1 adapter
    on the student's dense feature; None (default) adds one only when the channel counts differ
    (the authors compare the two shared-conv outputs directly). The prediction term's weight is
    not given by the paper; 1.0 here. ``instance_locations``: 'gt', 'pred' or 'both';
    ``anchor`` / ``projection`` (see :class:`InstanceContrastiveLoss`); ``batch_reduction``
    (:class:`ForegroundGaussianMSE`); ``velocity_weight`` / ``score_power`` /
    ``distill_velocity=False`` (single-frame students) for :class:`PredictionL1Loss`.
    """
    def channels(key):
        return (spec_channels(student_specs, key, student_channels, side="student", method="bevdistill"),
                spec_channels(teacher_specs, key, teacher_channels, side="teacher", method="bevdistill"))

    terms, adapters = [], {}
    if dense_weight:
        cs, ct = channels(feature_key)
        adapter = None
        if dense_adapter or (dense_adapter is None and cs != ct):
            adapter = "bevdistill_dense"
            adapters[adapter] = ChannelAdapter(cs, ct)
        elif cs != ct:
            raise ValueError(f"bevdistill_terms: dense_adapter=False but {feature_key!r} has {cs} student "
                             f"and {ct} teacher channels")
        terms.append(DistillTerm("bevdistill/dense", feature_key, feature_key,
                                 ForegroundGaussianMSE(min_overlap=min_overlap, batch_reduction=batch_reduction),
                                 adapter, dense_weight))
    if instance_weight:
        cs, ct = channels(instance_key)
        loss = InstanceContrastiveLoss(student_channels=cs, teacher_channels=ct, proj_dim=proj_dim, hidden=hidden,
                                       temperature=temperature, locations=instance_locations, anchor=anchor,
                                       projection=projection)
        terms.append(DistillTerm("bevdistill/instance", instance_key, instance_key, loss, None, instance_weight))
    if prediction_weight:
        terms.append(DistillTerm("bevdistill/prediction", ("heatmap", "reg"), ("heatmap", "reg"),
                                 PredictionL1Loss(score_thresh=score_thresh, max_peaks=max_peaks,
                                                  distill_velocity=distill_velocity, velocity_weight=velocity_weight,
                                                  score_power=score_power), None,
                                 prediction_weight))
    return terms, adapters


# ----------------------------------------------------------------------------- registry entry
def bevdistill_maps(ctx):
    """Visualisation hook: the dense term's per-cell weight (class-agnostic Gaussian at the GT
    centres with the term's ``min_overlap`` / ``min_radius``) and the instance term's GT centres."""
    dense = (ctx.losses(ForegroundGaussianMSE) or [ForegroundGaussianMSE()])[0]
    boxes = ctx.boxes()
    weight = draw_gaussian_heatmap(boxes, ctx.grid, min_overlap=dense.min_overlap, min_radius=dense.min_radius)
    return MethodMaps({"bevdistill/dense weight": weight}, keypoints=instance_centres([boxes], ctx.grid)[0],
                      overlay="GT instance centres")


DESCRIPTOR = MethodDescriptor("bevdistill", bevdistill_terms, "BEVDistill: Gaussian-weighted dense imitation, "
                              "instance contrast and prediction L1 (Chen et al., ICLR 2023)", bevdistill_maps)
