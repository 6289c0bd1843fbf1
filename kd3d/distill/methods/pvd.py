"""PVD, point-to-voxel knowledge distillation (Hou et al., CVPR 2022) for LiDAR segmenters.

Terms:

* pointwise KL ``T^2 KL(p_T || p_S)`` on ``point_logits`` (N, K);
* voxelwise KL on ``voxel_logits`` (SparseConvTensor, voxels matched by coordinates);
* affinity: the scene is partitioned into supervoxels (:func:`supervoxel_ids`, cylindrical
  ``rho x phi x z`` bins or cubes); K supervoxels are sampled per scan with the difficulty-aware
  probabilities of :func:`supervoxel_probabilities`; inside each, up to N points are drawn and
  the MSE between the student's and teacher's cosine-affinity matrices of ``point_feats`` is
  taken (channels may differ). Voxel features ('voxel', matched by coordinates) can be distilled
  the same way with their voxel centres (a separate term).

Difficulty-aware sampling (documented choice; the paper gives no formula): with ``n_c`` the
points of class c in the scan (labels from GT ``points_label`` or the teacher's argmax),
class weight ``w_c = sqrt(n_max / n_c)`` (rare classes weigh more; ignore label 0 gets 1);
a supervoxel s with points P_s and mean radial distance ``rho_s`` gets
``p_s ∝ mean_{i in P_s} w_{c_i} * (1 + rho_s / rho_max)`` (far supervoxels weigh up to 2x).
Loss weights: 1.0 each by default. The affinity over voxels is part of the method (the paper
distils inter-point and inter-voxel affinities inside the sampled supervoxels as one
component), so the voxel term is on by default with the point affinity's weight
(``voxel_affinity_weight=None``); see docs/methods.md (PVD).
"""
from __future__ import annotations

import math

import torch

from torch import nn

from kd3d.distill.adapters import match_sparse
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.methods import MethodDescriptor, MethodMaps
from kd3d.distill.losses import cosine_affinity, kl_div_loss
from kd3d.distill.specs import spec_geometry


def supervoxel_ids(xyz: torch.Tensor, *, mode: str = "cylinder", rho_max: float = 50.0, num_rho: int = 5,
                   num_phi: int = 16, z_range=(-5.0, 3.0), num_z: int = 1, cube: float = 10.0) -> torch.Tensor:
    """(P, 3) LiDAR-frame xyz -> (P,) int64 supervoxel id.

    cylinder: ``rho`` in ``num_rho`` bins over [0, rho_max) (farther clamps to the last),
    ``phi = atan2(y, x)`` in ``num_phi`` sectors over [-pi, pi), z in ``num_z`` bins over
    ``z_range`` (clamped); id = (rho_bin * num_phi + phi_bin) * num_z + z_bin.
    cubic: ``floor(xyz / cube)`` hashed to a unique id.
    """
    xyz = xyz.double()
    if mode == "cylinder":
        rho = torch.hypot(xyz[:, 0], xyz[:, 1])
        r = (rho / rho_max * num_rho).floor().long().clamp(0, num_rho - 1)
        phi = torch.atan2(xyz[:, 1], xyz[:, 0])
        p = ((phi + math.pi) / (2 * math.pi) * num_phi).floor().long().clamp(0, num_phi - 1)
        z = ((xyz[:, 2] - z_range[0]) / (z_range[1] - z_range[0]) * num_z).floor().long().clamp(0, num_z - 1)
        return (r * num_phi + p) * num_z + z
    if mode == "cubic":
        c = torch.floor(xyz / cube).long()
        c = c - c.min(dim=0).values if len(c) else c
        span = c.max(dim=0).values + 1 if len(c) else torch.ones(3, dtype=torch.long)
        return (c[:, 0] * span[1] + c[:, 1]) * span[2] + c[:, 2]
    raise ValueError(f"supervoxel_ids: mode must be 'cylinder' or 'cubic', got {mode!r}")


def supervoxel_probabilities(sv: torch.Tensor, labels: torch.Tensor, xyz: torch.Tensor, *, rho_max: float = 50.0):
    """Difficulty-aware sampling distribution (see the module docstring).

    ``sv`` (P,) supervoxel ids, ``labels`` (P,) int64 class per point, ``xyz`` (P, 3).
    Returns ``(ids (S,) unique supervoxel ids, probs (S,) summing to 1)``.
    """
    ids, inv = torch.unique(sv, return_inverse=True)
    counts = torch.bincount(labels.clamp(min=0))
    present = counts > 0
    w_cls = torch.ones(len(counts), dtype=torch.float64)
    w_cls[present] = torch.sqrt(counts[present].max().double() / counts[present].double())
    w_cls[0] = 1.0
    w_pt = w_cls[labels.clamp(min=0)]
    n = torch.bincount(inv, minlength=len(ids)).double()
    cls_score = torch.bincount(inv, weights=w_pt, minlength=len(ids)) / n
    rho = torch.hypot(xyz[:, 0].double(), xyz[:, 1].double())
    rho_mean = torch.bincount(inv, weights=rho, minlength=len(ids)) / n
    score = cls_score * (1.0 + rho_mean.clamp(max=rho_max) / rho_max)
    return ids, score / score.sum()


def _split_points(n: int, batch, who: str):
    """Per-sample xyz (list of (Pi, 3)) and GT labels (or None) for N concatenated point items."""
    key = [int(s.num_key_points) for s in batch.samples] if batch.samples else None
    if key is not None and sum(key) == n:
        xyz = [p[:k, :3] for p, k in zip(batch.points, key)]
        labels = list(batch.points_label)
        return xyz, key, (labels if all(lb is not None for lb in labels) else None)
    sizes = [len(p) for p in batch.points]
    if sum(sizes) == n:
        return [p[:, :3] for p in batch.points], sizes, None
    raise ValueError(f"pvd: {who} has {n} points, matching neither the key points ({key and sum(key)}) "
                     f"nor all points ({sum(sizes)}) of the batch")


class AffinityDistillLoss(nn.Module):
    """Supervoxel affinity term on per-point (or per-voxel) features (see the module docstring).

    ``student`` (P, C_s) and ``teacher`` (P, C_t), points of all samples concatenated (key
    points or all points), or two ``SparseConvTensor`` (then ``voxel_size``/``point_range`` give
    the voxel centres). ``seed`` makes the sampling reproducible (a fresh draw every call).
    """

    def __init__(self, *, num_supervoxels: int = 8, points_per_supervoxel: int = 64, mode: str = "cylinder",
                 rho_max: float = 50.0, num_rho: int = 5, num_phi: int = 16, voxel_size=None, point_range=None,
                 seed: int = 0):
        super().__init__()
        self.k, self.n = int(num_supervoxels), int(points_per_supervoxel)
        self.sv_kw = {"mode": mode, "rho_max": rho_max, "num_rho": num_rho, "num_phi": num_phi}
        self.rho_max = float(rho_max)
        self.voxel_size, self.point_range = voxel_size, point_range
        self.generator = torch.Generator().manual_seed(int(seed))

    def _per_sample(self, student, teacher, ctx):
        if type(student).__name__ == "SparseConvTensor":
            if self.voxel_size is None or self.point_range is None:
                raise ValueError("pvd affinity on voxels needs voxel_size and point_range")
            fs, ft, idx = match_sparse(student, teacher)
            vs = torch.tensor(self.voxel_size, dtype=torch.float64)
            lo = torch.tensor(self.point_range[:3], dtype=torch.float64)
            centres = (idx[:, [3, 2, 1]].double().cpu() + 0.5) * vs + lo
            out = []
            for b in range(student.batch_size):
                m = (idx[:, 0] == b).cpu()
                out.append((fs[m.to(fs.device)], ft[m.to(ft.device)], centres[m], None))
            return out
        xyz, sizes, labels = _split_points(student.shape[0], ctx.batch, "point features")
        if labels is None and "point_logits" in ctx.teacher_out.feats:
            pred = ctx.teacher_out.feats["point_logits"].detach().argmax(dim=1).cpu()
            labels = list(pred.split(sizes))
        fs, ft = student.split(sizes), teacher.split(sizes)
        return [(fs[b], ft[b], xyz[b].cpu(), None if labels is None else labels[b].cpu()) for b in range(len(sizes))]

    def forward(self, student, teacher, ctx):
        losses = []
        for fs, ft, xyz, labels in self._per_sample(student, teacher, ctx):
            if len(fs) < 2:
                continue
            sv = supervoxel_ids(xyz, **self.sv_kw)
            lab = labels if labels is not None else torch.zeros(len(sv), dtype=torch.long)
            ids, probs = supervoxel_probabilities(sv, lab.long(), xyz, rho_max=self.rho_max)
            k = min(self.k, len(ids))
            chosen = ids[torch.multinomial(probs.float(), k, replacement=False, generator=self.generator)]
            for sid in chosen.tolist():
                members = torch.nonzero(sv == sid, as_tuple=True)[0]
                if len(members) < 2:
                    continue
                if len(members) > self.n:
                    members = members[torch.randperm(len(members), generator=self.generator)[: self.n]]
                members = members.to(fs.device)
                a_s = cosine_affinity(fs[members])
                a_t = cosine_affinity(ft[members].detach())
                losses.append((a_s - a_t).pow(2).mean())
        if not losses:
            return (student.features if type(student).__name__ == "SparseConvTensor" else student).sum() * 0.0
        return torch.stack(losses).mean()


class PointKLLoss(nn.Module):
    """Pointwise KL on (N, K) logits."""

    def __init__(self, *, temperature: float = 1.0):
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, student, teacher, ctx=None):
        return kl_div_loss(student, teacher, temperature=self.temperature, dim=1)


class VoxelKLLoss(PointKLLoss):
    """Voxelwise KL on SparseConvTensor logits matched by coordinates."""

    def forward(self, student, teacher, ctx=None):
        fs, ft, _ = match_sparse(student, teacher)
        if len(fs) == 0:
            return student.features.sum() * 0.0
        return kl_div_loss(fs, ft, temperature=self.temperature, dim=1)


def pvd_terms(*, temperature: float = 1.0, point_kl_weight: float = 1.0, voxel_kl_weight: float = 1.0,
              affinity_weight: float = 1.0, feature_key: str = "point_feats", num_supervoxels: int = 8,
              points_per_supervoxel: int = 64, supervoxel_mode: str = "cylinder", seed: int = 0,
              voxel_affinity_weight: float | None = None, voxel_key: str = "voxel", voxel_size=None,
              point_range=None, student_specs: dict | None = None, teacher_specs: dict | None = None):
    """PVD terms; a weight of 0 drops its term. Returns ``(terms, {})``.

    ``voxel_affinity_weight`` (default None = ``affinity_weight``; 0 drops it, as kd3d before)
    adds the same supervoxel affinity on the sparse ``voxel_key`` features (voxels matched by
    coordinates, centres from the ``voxel_size`` (vx, vy, vz) and ``point_range`` of that
    tensor's grid: read from the teacher's ``teacher_specs``; explicit values only when building
    without models, see :mod:`kd3d.distill.specs`).
    """
    if voxel_affinity_weight is None:
        voxel_affinity_weight = affinity_weight
    if voxel_affinity_weight:
        voxel_size = spec_geometry(teacher_specs, voxel_key, "voxel_size", voxel_size, side="teacher", method="pvd")
        point_range = spec_geometry(teacher_specs, voxel_key, "point_range", point_range, side="teacher", method="pvd")
    terms = []
    if point_kl_weight:
        terms.append(DistillTerm("pvd/point_kl", "point_logits", "point_logits", PointKLLoss(temperature=temperature),
                                 None, point_kl_weight))
    if voxel_kl_weight:
        terms.append(DistillTerm("pvd/voxel_kl", "voxel_logits", "voxel_logits", VoxelKLLoss(temperature=temperature),
                                 None, voxel_kl_weight))
    if affinity_weight:
        loss = AffinityDistillLoss(num_supervoxels=num_supervoxels, points_per_supervoxel=points_per_supervoxel,
                                   mode=supervoxel_mode, seed=seed)
        terms.append(DistillTerm("pvd/affinity", feature_key, feature_key, loss, None, affinity_weight))
    if voxel_affinity_weight:
        if voxel_size is None or point_range is None:
            raise ValueError(f"pvd_terms: the voxel affinity term (voxel_affinity_weight={voxel_affinity_weight}) needs "
                             f"the {voxel_key!r} grid's voxel_size and point_range: build with the teacher model "
                             "(feature specs), pass them, or set voxel_affinity_weight=0")
        loss = AffinityDistillLoss(num_supervoxels=num_supervoxels, points_per_supervoxel=points_per_supervoxel,
                                   mode=supervoxel_mode, seed=seed + 1, voxel_size=list(voxel_size),
                                   point_range=list(point_range))
        terms.append(DistillTerm("pvd/voxel_affinity", voxel_key, voxel_key, loss, None, voxel_affinity_weight))
    return terms, {}


# ----------------------------------------------------------------------------- registry entry
def pvd_maps(ctx):
    """Visualisation hook on ``ctx.grid``: each cell's difficulty-aware sampling probability (of
    the supervoxel its points belong to; max over the cell's points, 0 where empty), and, as
    grouped points, up to N points of K supervoxels drawn with those probabilities (the affinity
    term's settings; a fixed seed, so not the draw of any training step)."""
    b, g = ctx.batch_index, ctx.grid
    loss = (ctx.losses(AffinityDistillLoss) or [AffinityDistillLoss()])[0]
    term = ctx.term_of(AffinityDistillLoss)
    feats = ctx.teacher_out.feats if ctx.teacher_out is not None else {}
    value = feats.get(term.teacher_key) if term is not None else None
    if torch.is_tensor(value):  # the points the term reads, labelled as the term labels them
        xyz, sizes, labels = _split_points(value.shape[0], ctx.batch, "point features")
        if labels is None and torch.is_tensor(feats.get("point_logits")):
            labels = list(feats["point_logits"].detach().argmax(dim=1).cpu().split(sizes))
    else:  # no model: the key points and their GT labels
        samples = getattr(ctx.batch, "samples", None)
        key = [int(s.num_key_points) for s in samples] if samples else [len(p) for p in ctx.batch.points]
        xyz, labels = [p[:k, :3] for p, k in zip(ctx.batch.points, key)], list(ctx.batch.points_label)
    xyz = torch.as_tensor(xyz[b]).double().cpu()
    lab = labels[b] if labels is not None and labels[b] is not None else None
    lab = torch.zeros(len(xyz), dtype=torch.long) if lab is None else torch.as_tensor(lab).long().cpu()[: len(xyz)]
    sv = supervoxel_ids(xyz, **loss.sv_kw)
    ids, probs = supervoxel_probabilities(sv, lab, xyz, rho_max=loss.rho_max)
    p_point = probs[torch.searchsorted(ids, sv)]
    col = torch.floor((xyz[:, 0] - g.xmin) / g.dx).long()
    row = torch.floor((xyz[:, 1] - g.ymin) / g.dy).long()
    ok = (col >= 0) & (col < g.nx) & (row >= 0) & (row < g.ny)
    prob_map = torch.zeros(g.ny * g.nx, dtype=torch.float64).scatter_reduce(0, (row * g.nx + col)[ok], p_point[ok],
                                                                          "amax")
    gen = torch.Generator().manual_seed(0)
    chosen = ids[torch.multinomial(probs.float(), min(loss.k, len(ids)), replacement=False, generator=gen)]
    pts, grp = [], []
    for j, sid in enumerate(chosen.tolist()):
        members = torch.nonzero(sv == sid, as_tuple=True)[0]
        members = members[torch.randperm(len(members), generator=gen)[: loss.n]]
        pts.append(xyz[members, :2])
        grp.append(torch.full((len(members),), j))
    return MethodMaps({"pvd/supervoxel sampling prob": prob_map.reshape(g.shape)},
                      points=torch.cat(pts) if pts else torch.zeros(0, 2),
                      point_groups=torch.cat(grp) if grp else torch.zeros(0, dtype=torch.long),
                      overlay=f"{loss.k} sampled supervoxels")


DESCRIPTOR = MethodDescriptor("pvd", pvd_terms, "PVD: point / voxel KL and difficulty-aware supervoxel affinity "
                              "distillation for LiDAR segmenters (Hou et al., CVPR 2022)", pvd_maps)
