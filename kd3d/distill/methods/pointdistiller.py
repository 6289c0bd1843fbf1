"""PointDistiller (Zhang et al., CVPR 2023): local (graph) distillation on the most important
voxels / pillars / points, with importance-based reweighting.

Per sample:

1. items: voxels of the sparse ``voxel`` features matched by coordinates
   (:func:`kd3d.distill.adapters.match_sparse`), or the cells of a dense (B, C, H, W) map
   (pillar detectors);
2. importance: points per voxel (``importance='points'``, needs the stage's voxel size and the
   point range) or the channel max of the teacher feature (``'feature_max'``);
   select the top-N items;
3. kNN graph (K neighbours, the item itself excluded) in teacher feature space; the student uses
   the same indices;
4. edge features ``cat[z_j, z_i]`` -> 1x1 conv + BN + ReLU per side (trained with the student,
   dropped at inference) -> max over the K neighbours -> graph features G (N, C');
5. ``phi = N softmax(score / tau)`` with ``score = importance / max(importance)`` over the N
   selected items (normalised so tau means the same across scenes: our choice, the paper does
   not fix the scale); ``L = mean(phi * (G_T - G_S)^2)``, averaged over the batch.

Settings from the paper: PointPillars N=6000 K=128 tau=1e-2; SECOND N=256 tau=1e-4.
"""
from __future__ import annotations

import torch
from torch import nn

from kd3d.distill.adapters import match_sparse
from kd3d.distill.distiller import DistillTerm
from kd3d.ops.spconv import is_sparse_tensor

PRESETS = {"pointpillars": {"num_items": 6000, "k": 128, "tau": 1e-2},
           "second": {"num_items": 256, "k": 128, "tau": 1e-4}}


def select_top_n(importance: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest importances (all when fewer), in descending order;
    ties broken by the lower index."""
    n = min(int(n), importance.numel())
    order = torch.argsort(-importance.double(), stable=True)
    return order[:n]


def knn_indices(feat: torch.Tensor, k: int, *, chunk: int = 1024) -> torch.Tensor:
    """(N, C) -> (N, k') indices of the k' = min(k, N-1) nearest other items (Euclidean),
    nearest first (ties in any order). Rows are processed in chunks so N = 6000
    (PointPillars setting) needs O(chunk * N) memory."""
    n = feat.shape[0]
    k = min(int(k), n - 1)
    if k <= 0:
        return torch.zeros((n, 0), dtype=torch.long, device=feat.device)
    f = feat.detach().float()
    out = []
    for start in range(0, n, chunk):
        d = torch.cdist(f[start:start + chunk], f)
        rows = torch.arange(d.shape[0], device=d.device)
        d[rows, rows + start] = float("inf")
        out.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
    return torch.cat(out)


def voxel_point_counts(points: torch.Tensor, indices: torch.Tensor, *, point_range, spatial_shape,
                       voxel_size=None) -> torch.Tensor:
    """Points of one sample falling in each voxel ``indices`` (M, 3) ``z y x`` of a grid with
    ``voxel_size`` (vx, vy, vz) starting at ``point_range[:3]`` (default: the range divided by
    ``spatial_shape`` (Z, Y, X), i.e. the voxel size of a strided sparse stage). Returns (M,) float."""
    z, y, x = (int(v) for v in spatial_shape)
    if voxel_size is None:
        voxel_size = [(point_range[3] - point_range[0]) / x, (point_range[4] - point_range[1]) / y,
                      (point_range[5] - point_range[2]) / z]
    p = points[:, :3].double()
    lo = torch.tensor(point_range[:3], dtype=torch.float64, device=p.device)
    vs = torch.tensor(voxel_size, dtype=torch.float64, device=p.device)
    c = torch.floor((p - lo) / vs).long()  # (P, 3) x y z
    ok = (c[:, 0] >= 0) & (c[:, 0] < x) & (c[:, 1] >= 0) & (c[:, 1] < y) & (c[:, 2] >= 0) & (c[:, 2] < z)
    c = c[ok]
    keys = torch.sort((c[:, 2] * y + c[:, 1]) * x + c[:, 0]).values
    vi = indices.long().to(p.device)
    vkeys = (vi[:, 0] * y + vi[:, 1]) * x + vi[:, 2]
    # occurrences of each voxel key among the sorted point keys (no dense Z*Y*X table)
    counts = torch.searchsorted(keys, vkeys, right=True) - torch.searchsorted(keys, vkeys, right=False)
    return counts.float()


def reweight(score: torch.Tensor, tau: float) -> torch.Tensor:
    """``phi = N softmax(score / max(score) / tau)`` over the N selected items (sums to N)."""
    score = score.float() / score.abs().max().clamp(min=1e-12)
    return len(score) * torch.softmax(score / tau, dim=0)


class EdgeConv(nn.Module):
    """``cat[z_j, z_i]`` (2C) -> 1x1 conv + BN + ReLU -> max over neighbours: (N, C) -> (N, C')."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
                                 nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, z: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        zj = z[nbr]  # (N, K, C)
        zi = z[:, None].expand_as(zj)
        e = torch.cat([zj, zi], dim=-1).permute(2, 0, 1)[None]  # (1, 2C, N, K)
        return self.net(e)[0].max(dim=-1).values.t()  # (N, C')


class PointDistillerLoss(nn.Module):
    """The PointDistiller term (see the module docstring).

    ``student``/``teacher``: ``SparseConvTensor`` (voxel detectors) or (B, C, H, W) maps
    (pillar detectors). ``importance='points'`` (sparse inputs only) requires the model's
    ``point_range``; the stage's voxel size defaults to the range over the spatial shape.
    """

    def __init__(self, *, student_channels: int, teacher_channels: int, graph_channels: int = 64,
                 num_items: int = 256, k: int = 16, tau: float = 1e-2, importance: str = "feature_max",
                 voxel_size=None, point_range=None):
        super().__init__()
        if importance not in ("points", "feature_max"):
            raise ValueError(f"PointDistillerLoss: importance must be 'points' or 'feature_max', got {importance!r}")
        if importance == "points" and point_range is None:
            raise ValueError("PointDistillerLoss: importance='points' needs the point_range of the model")
        self.student_edge = EdgeConv(student_channels, graph_channels)
        self.teacher_edge = EdgeConv(teacher_channels, graph_channels)
        self.num_items, self.k, self.tau = int(num_items), int(k), float(tau)
        self.importance = importance
        self.voxel_size, self.point_range = voxel_size, point_range

    def _items(self, student, teacher, ctx):
        """Per sample (fs (M, C_s), ft (M, C_t), importance (M,))."""
        out = []
        if is_sparse_tensor(student):
            fs, ft, idx = match_sparse(student, teacher)
            for b in range(student.batch_size):
                m = idx[:, 0] == b
                if self.importance == "points":
                    imp = voxel_point_counts(ctx.batch.points[b], idx[m, 1:], voxel_size=self.voxel_size,
                                             point_range=self.point_range, spatial_shape=student.spatial_shape)
                else:
                    imp = ft[m].detach().max(dim=1).values
                out.append((fs[m], ft[m], imp.to(ft.device)))
            return out
        if self.importance != "feature_max":
            raise ValueError("PointDistillerLoss: dense (pillar/BEV) inputs use importance='feature_max'")
        if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
            raise ValueError(f"PointDistillerLoss: maps differ {tuple(student.shape)} vs {tuple(teacher.shape)}")
        for b in range(student.shape[0]):
            fs = student[b].flatten(1).t()
            ft = teacher[b].flatten(1).t()
            out.append((fs, ft, ft.detach().max(dim=1).values))
        return out

    def forward(self, student, teacher, ctx):
        losses = []
        for fs, ft, imp in self._items(student, teacher, ctx):
            if fs.shape[0] < 2:
                continue
            sel = select_top_n(imp, self.num_items)
            zs, zt, score = fs[sel], ft[sel].detach(), imp[sel].float()
            nbr = knn_indices(zt, self.k)
            gs, gt = self.student_edge(zs, nbr), self.teacher_edge(zt, nbr)
            phi = reweight(score, self.tau)
            losses.append((phi[:, None] * (gt - gs).pow(2)).mean())
        if not losses:  # keep the graph convs in the graph (DDP expects every parameter to get a gradient)
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return (student.features if is_sparse_tensor(student) else student).sum() * 0.0 + zero
        return torch.stack(losses).mean()

    def extra_repr(self):
        return f"num_items={self.num_items}, k={self.k}, tau={self.tau}, importance={self.importance}"


def pointdistiller_terms(*, student_channels: int, teacher_channels: int, feature_key: str = "voxel",
                         preset: str | None = None, num_items: int | None = None, k: int | None = None,
                         tau: float | None = None, graph_channels: int = 64, importance: str | None = None,
                         voxel_size=None, point_range=None, weight: float = 1.0):
    """PointDistiller term on ``feature_key`` ('voxel' for SECOND-like, 'bev' for pillars).

    ``preset`` 'pointpillars' or 'second' fills N/K/tau (explicit values override). Importance
    defaults to 'points' when ``point_range`` is given, else 'feature_max'. Returns ``(terms, {})``:
    the graph convs live in the loss module.
    """
    if preset and preset not in PRESETS:
        raise ValueError(f"pointdistiller: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    cfg = dict(PRESETS[preset]) if preset else {"num_items": 256, "k": 16, "tau": 1e-2}
    for name, v in (("num_items", num_items), ("k", k), ("tau", tau)):
        if v is not None:
            cfg[name] = v
    importance = importance or ("points" if point_range is not None else "feature_max")
    loss = PointDistillerLoss(student_channels=student_channels, teacher_channels=teacher_channels,
                              graph_channels=graph_channels, importance=importance, voxel_size=voxel_size,
                              point_range=point_range, **cfg)
    return [DistillTerm("pointdistiller/local", feature_key, feature_key, loss, None, weight)], {}
