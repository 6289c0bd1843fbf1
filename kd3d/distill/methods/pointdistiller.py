"""PointDistiller (Zhang et al., CVPR 2023): local (graph) distillation on the most important
voxels / pillars / BEV cells, with importance-based reweighting. Term by term against the paper
and the authors' code: ``docs/methods.md`` (PointDistiller section).

Per sample (never across samples; the authors' PointPillars code selects over the whole batch):

1. items: the non-empty voxels / pillars of a sparse feature (``SparseConvTensor``; student and
   teacher matched by coordinates, :func:`kd3d.distill.adapters.match_sparse`), or all H*W cells
   of a dense (B, C, H, W) map;
2. importance: ``'points'`` = points the voxelizer KEPT in the item (capped at its max points
   per voxel), read from the teacher's ``voxel_num_points`` feature (summed over the input
   voxels inside a coarser stage voxel), or ``'feature_max'`` = channel max of the teacher
   feature; the top-N items are the graph centres;
3. kNN in TEACHER feature space: each centre's K nearest items among ALL items of the sample,
   the centre itself first (distance 0); the student uses the same indices;
4. edge features ``cat[z_j, z_i]`` -> 1x1 conv + BN + ReLU per side (trained with the student,
   dropped at inference) -> per-edge graph features G (N, C', K); ``pool='max'`` max-pools over
   the K neighbours first (point-based detectors);
5. ``phi = N softmax(importance / tau)`` on the raw importance of the N centres (``tau=None``:
   phi = 1, the weights the authors' BEV-backbone code ends up with);
   ``L = 2 mean_{n,c,k} phi_n (G_T - G_S)^2``, averaged over the samples of the batch.
"""
from __future__ import annotations

import torch
from torch import nn

from kd3d.distill.adapters import match_sparse
from kd3d.distill.distiller import DistillTerm
from kd3d.distill.specs import spec_channels
from kd3d.distill.methods import MethodDescriptor, MethodMaps
from kd3d.ops.spconv import is_sparse_tensor

# PointPillars: pillar features before the scatter, points-per-pillar importance (paper).
# SECOND: two 2D BEV-backbone stages, channel-max importance, uniform weights (the paper gives
# no tau for it; the authors' code's softmax runs over a singleton axis, so every centre weighs
# the same): see docs/methods.md.
PRESETS = {"pointpillars": {"num_items": 6000, "k": 128, "tau": 1e-2},
           "second": {"num_items": 256, "k": 128, "tau": "uniform"}}
COUNT_KEY = "voxel_num_points"


def select_top_n(importance: torch.Tensor, n: int) -> torch.Tensor:
    """Indices of the ``n`` largest importances (all when fewer), in descending order;
    ties broken by the lower index."""
    n = min(int(n), importance.numel())
    order = torch.argsort(-importance.double(), stable=True)
    return order[:n]


def knn_indices(feat: torch.Tensor, centres: torch.Tensor, k: int, *, chunk: int = 1024) -> torch.Tensor:
    """feat (M, C) all items of a sample, centres (N,) item indices -> (N, k') indices into the M
    items of the k' = min(k, M) nearest to each centre (Euclidean), nearest first: the centre
    itself is always column 0 (ties between other items in any order). Chunks of ``chunk``
    centres keep memory at O(chunk * M) (N = 6000 of 30000 pillars)."""
    m = feat.shape[0]
    k = min(int(k), m)
    f = feat.detach().float()
    out = []
    for start in range(0, centres.numel(), chunk):
        c = centres[start:start + chunk]
        d = torch.cdist(f[c], f)
        d[torch.arange(c.numel(), device=d.device), c] = -1.0  # the centre first, even among equal features
        out.append(torch.topk(d, k, dim=1, largest=False, sorted=True).indices)
    if not out:
        return torch.zeros((0, k), dtype=torch.long, device=feat.device)
    return torch.cat(out)


def kept_point_counts(counts, indices: torch.Tensor, spatial_shape) -> torch.Tensor:
    """Points the voxelizer kept in each item.

    counts: ``SparseConvTensor`` (V, 1) on the voxelizer grid (indices ``b z y x``), e.g. a
    model's ``voxel_num_points`` feature (already capped at max points per voxel);
    indices (M, 4) ``b z y x`` of the items on a grid of ``spatial_shape`` (Z, Y, X), the
    voxelizer grid or a strided stage of it (input voxel z y x lies in stage voxel
    ``floor(z y x * stage_shape / input_shape)``). Returns (M,) float: the summed kept counts
    of the input voxels inside each item (0 where none).
    """
    src = [int(v) for v in counts.spatial_shape]
    dst = [int(v) for v in spatial_shape]
    ci = counts.indices.long()
    scaled = [ci[:, 1 + a] * dst[a] // src[a] for a in range(3)]

    def key(b, z, y, x):
        return ((b * dst[0] + z) * dst[1] + y) * dst[2] + x

    ckeys = key(ci[:, 0], *scaled)
    uniq, inv = torch.unique(ckeys, return_inverse=True)
    sums = torch.zeros(uniq.numel(), dtype=torch.float64, device=ci.device)
    sums.index_add_(0, inv, counts.features[:, 0].double())
    ii = indices.long().to(ci.device)
    qkeys = key(ii[:, 0], ii[:, 1], ii[:, 2], ii[:, 3])
    if uniq.numel() == 0:
        return torch.zeros(len(qkeys), dtype=torch.float32, device=ci.device)
    pos = torch.searchsorted(uniq, qkeys).clamp(max=uniq.numel() - 1)
    return torch.where(uniq[pos] == qkeys, sums[pos], torch.zeros_like(sums[pos])).float()


def reweight(importance: torch.Tensor, tau: float | None) -> torch.Tensor:
    """``phi = N softmax(importance / tau)`` over the N centres, on the raw importance (sums to
    N); ``tau=None``: all ones (the limit tau -> inf)."""
    importance = importance.detach().float()
    if tau is None:
        return torch.ones_like(importance)
    return len(importance) * torch.softmax(importance / float(tau), dim=0)


class EdgeConv(nn.Module):
    """``cat[z_j, z_i]`` (2C) -> 1x1 conv + BN + ReLU: centres (N, C) from all items (M, C) and
    neighbour indices (N, K) -> per-edge graph features (N, C', K)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2 * in_channels, out_channels, 1, bias=False),
                                 nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))

    def forward(self, items: torch.Tensor, centres: torch.Tensor, nbr: torch.Tensor) -> torch.Tensor:
        zj = items[nbr]  # (N, K, C)
        zi = items[centres][:, None].expand_as(zj)
        e = torch.cat([zj, zi], dim=-1).permute(2, 0, 1)[None]  # (1, 2C, N, K)
        return self.net(e)[0].permute(1, 0, 2)  # (N, C', K)


class PointDistillerLoss(nn.Module):
    """The PointDistiller term (see the module docstring).

    ``student``/``teacher``: ``SparseConvTensor`` (voxels / pillars) or (B, C, H, W) maps.
    ``importance='points'`` (sparse inputs) reads the teacher's ``count_key`` feature (declared
    in ``extra_teacher_keys`` so a teacher cache stores it). ``tau=None``: uniform weights.
    ``pool``: ``'none'`` (per-edge loss, voxel / pillar / BEV features) or ``'max'``.
    """

    def __init__(self, *, student_channels: int, teacher_channels: int, graph_channels: int = 64,
                 num_items: int = 256, k: int = 128, tau: float | None = 1e-2, importance: str = "feature_max",
                 pool: str = "none", count_key: str = COUNT_KEY):
        super().__init__()
        if importance not in ("points", "feature_max"):
            raise ValueError(f"PointDistillerLoss: importance must be 'points' or 'feature_max', got {importance!r}")
        if pool not in ("none", "max"):
            raise ValueError(f"PointDistillerLoss: pool must be 'none' or 'max', got {pool!r}")
        if tau is not None and not float(tau) > 0:
            raise ValueError(f"PointDistillerLoss: tau must be > 0 or None (uniform weights), got {tau!r}")
        self.student_edge = EdgeConv(student_channels, graph_channels)
        self.teacher_edge = EdgeConv(teacher_channels, graph_channels)
        self.num_items, self.k = int(num_items), int(k)
        self.tau = None if tau is None else float(tau)
        self.importance, self.pool, self.count_key = importance, pool, count_key
        self.extra_teacher_keys = (count_key,) if importance == "points" else ()

    def _items(self, student, teacher, ctx):
        """Per sample (fs (M, C_s), ft (M, C_t), importance (M,))."""
        out = []
        if is_sparse_tensor(student):
            fs, ft, idx = match_sparse(student, teacher)
            imp_all = None
            if self.importance == "points":
                feats = getattr(getattr(ctx, "teacher_out", None), "feats", None) or {}
                if self.count_key not in feats:
                    raise KeyError(f"PointDistillerLoss: importance='points' needs the teacher feature "
                                   f"{self.count_key!r} (kept points per voxel); available: {sorted(feats)}")
                imp_all = kept_point_counts(feats[self.count_key], idx, student.spatial_shape).to(ft.device)
            for b in range(student.batch_size):
                m = idx[:, 0] == b
                imp = imp_all[m] if imp_all is not None else ft[m].detach().max(dim=1).values
                out.append((fs[m], ft[m], imp))
            return out
        if self.importance != "feature_max":
            raise ValueError("PointDistillerLoss: dense (B, C, H, W) inputs use importance='feature_max'")
        if student.shape[0] != teacher.shape[0] or student.shape[2:] != teacher.shape[2:]:
            raise ValueError(f"PointDistillerLoss: maps differ {tuple(student.shape)} vs {tuple(teacher.shape)}")
        for b in range(student.shape[0]):
            fs = student[b].flatten(1).t()
            ft = teacher[b].flatten(1).t()
            out.append((fs, ft, ft.detach().max(dim=1).values))
        return out

    def sample_loss(self, fs: torch.Tensor, ft: torch.Tensor, importance: torch.Tensor) -> torch.Tensor:
        """One sample: fs (M, C_s), ft (M, C_t), importance (M,) -> scalar."""
        ft = ft.detach()
        centres = select_top_n(importance, self.num_items)
        nbr = knn_indices(ft, centres, self.k)
        gs, gt = self.student_edge(fs, centres, nbr), self.teacher_edge(ft, centres, nbr)  # (N, C', K)
        if self.pool == "max":
            gs, gt = gs.max(dim=-1).values, gt.max(dim=-1).values  # (N, C')
        phi = reweight(importance[centres], self.tau)
        phi = phi.view(-1, *([1] * (gs.dim() - 1)))
        return 2.0 * (phi * (gt - gs).pow(2)).mean()

    def forward(self, student, teacher, ctx):
        losses = [self.sample_loss(fs, ft, imp) for fs, ft, imp in self._items(student, teacher, ctx)
                  if fs.shape[0] > 0]
        if not losses:  # keep the graph convs in the graph (DDP expects every parameter to get a gradient)
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return (student.features if is_sparse_tensor(student) else student).sum() * 0.0 + zero
        return torch.stack(losses).mean()

    def extra_repr(self):
        return (f"num_items={self.num_items}, k={self.k}, tau={self.tau}, importance={self.importance}, "
                f"pool={self.pool}")


def pointdistiller_terms(*, student_specs: dict | None = None, teacher_specs: dict | None = None,
                         student_channels=None, teacher_channels=None, feature_key="voxel", preset: str | None = None,
                         num_items: int | None = None, k: int | None = None, tau: float | str | None = None,
                         graph_channels: int = 64, importance: str | None = None, pool: str = "none",
                         weight: float = 1.0):
    """PointDistiller terms, one per key of ``feature_key`` (a key or a list of keys). Channels
    come from the models' ``student_specs`` / ``teacher_specs``; without models,
    ``student_channels`` / ``teacher_channels`` (a number or a list of the same length), see
    :mod:`kd3d.distill.specs`.

    Defaults by preset (docs/methods.md): ``'pointpillars'`` on ``voxel`` of the pillar model
    (pillar features before the scatter), ``'second'`` on ``['bev_stage1', 'bev_stage2']``.
    ``preset`` fills N / K / tau; explicit values override (``tau='uniform'``: phi = 1).
    ``importance`` defaults to ``'points'`` for the sparse ``voxel`` key, else ``'feature_max'``.
    Term names: ``pointdistiller/<key>``. Returns ``(terms, {})``: the graph convs live in the
    loss modules.
    """
    if preset and preset not in PRESETS:
        raise ValueError(f"pointdistiller: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    cfg = dict(PRESETS[preset]) if preset else {"num_items": 256, "k": 128, "tau": 1e-2}
    for name, v in (("num_items", num_items), ("k", k)):
        if v is not None:
            cfg[name] = v
    if tau is not None:
        cfg["tau"] = tau
    if cfg["tau"] == "uniform":
        cfg["tau"] = None
    elif isinstance(cfg["tau"], str):
        raise ValueError(f"pointdistiller: tau must be a number > 0 or 'uniform', got {cfg['tau']!r}")
    keys = [feature_key] if isinstance(feature_key, str) else list(feature_key)

    def per_key(v, what):
        vs = [v] * len(keys) if v is None or isinstance(v, int) else list(v)
        if len(vs) != len(keys):
            raise ValueError(f"pointdistiller: {what} {v!r} must be one number or one per feature key {keys}")
        return vs

    terms = []
    for key, cs, ct in zip(keys, per_key(student_channels, "student_channels"),
                           per_key(teacher_channels, "teacher_channels")):
        imp = importance or ("points" if key == "voxel" else "feature_max")
        cs = spec_channels(student_specs, key, cs, side="student", method="pointdistiller")
        ct = spec_channels(teacher_specs, key, ct, side="teacher", method="pointdistiller")
        loss = PointDistillerLoss(student_channels=cs, teacher_channels=ct, graph_channels=graph_channels,
                                  importance=imp, pool=pool, **cfg)
        terms.append(DistillTerm(f"pointdistiller/{key}", key, key, loss, None, weight))
    return terms, {}


# ----------------------------------------------------------------------------- registry entry
def _item_fractions(student, teacher, b: int) -> torch.Tensor:
    """(M, 2) fractional (x, y) position in [0, 1) of sample ``b``'s items, in the order of
    :meth:`PointDistillerLoss._items` (voxels of ``match_sparse``, or the cells of a dense map)."""
    if is_sparse_tensor(teacher):
        _, _, idx = match_sparse(student, teacher)
        idx = idx[idx[:, 0] == b].double().cpu()
        shape = teacher.spatial_shape  # (z, y, x)
        return torch.stack([(idx[:, 3] + 0.5) / shape[-1], (idx[:, 2] + 0.5) / shape[-2]], dim=1)
    h, w = teacher.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                                indexing="ij")
    return torch.stack([(cols.reshape(-1) + 0.5) / w, (rows.reshape(-1) + 0.5) / h], dim=1)


def pointdistiller_maps(ctx):
    """Visualisation hook on ``ctx.grid``: each cell's largest item importance (points per voxel
    or teacher channel max, as the term computes it; items projected to BEV), the number of
    top-N items selected as graph centres in it, and the selected cells' centres as points."""
    import inspect

    b, g = ctx.batch_index, ctx.grid
    term = ctx.term_of(PointDistillerLoss)
    if term is not None and ctx.inputs is not None:
        s, t = ctx.inputs(term)
        _, _, imp = term.loss._items(s, t, ctx.distill_ctx)[b]
        frac, n = _item_fractions(s, t, b), term.loss.num_items
    elif ctx.teacher_feat is not None:
        t = torch.as_tensor(ctx.teacher_feat).float()[None]
        imp, frac = t[0].flatten(1).max(dim=0).values, _item_fractions(t, t, 0)
        n = inspect.signature(PointDistillerLoss).parameters["num_items"].default
    else:
        return MethodMaps()
    imp = imp.detach().double().cpu()
    cells = (frac[:, 1] * g.ny).long().clamp(0, g.ny - 1) * g.nx + (frac[:, 0] * g.nx).long().clamp(0, g.nx - 1)
    importance = torch.zeros(g.ny * g.nx, dtype=torch.float64).scatter_reduce(0, cells, imp, "amax")
    sel = cells[select_top_n(imp, n).cpu()] if len(imp) else cells[:0]
    selected = torch.bincount(sel, minlength=g.ny * g.nx).double()
    used = torch.unique(sel)
    xy = torch.stack([g.xmin + ((used % g.nx).double() + 0.5) * g.dx, g.ymin + ((used // g.nx).double() + 0.5) * g.dy], 1)
    return MethodMaps({"pointdistiller/importance": importance.reshape(g.shape),
                       f"pointdistiller/selected (top {n})": selected.reshape(g.shape)}, points=xy,
                      overlay=f"cells of the top {n} items")


DESCRIPTOR = MethodDescriptor("pointdistiller", pointdistiller_terms, "PointDistiller: kNN graph imitation on "
                              "the top-N important voxels / pillars / cells (Zhang et al., CVPR 2023)",
                              pointdistiller_maps)
