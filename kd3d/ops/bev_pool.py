"""BEV pooling of camera frustum features without materialising the frustum tensor.

LSS-style camera detectors lift every feature pixel ``(n, h, w)`` of camera ``n`` to ``D``
depth candidates with weights ``depth[n, d, h, w]`` (softmax over ``d``) and context vector
``feat[n, :, h, w]`` (C channels), then sum the outer products into BEV cells::

    bev[b, :, row, col] = sum_{(n, d, h, w) -> (b, row, col)} depth[n, d, h, w] * feat[n, :, h, w]

The naive way builds the ``(N, D, H, W, C)`` product tensor first (:func:`bev_pool_naive`, kept
as the reference). :func:`bev_pool` never does (the BEVPoolv2 idea):

1. Per geometry (frustum points in the LiDAR frame), :func:`build_bev_pool_index` keeps the
   points inside the grid, sorts them by BEV cell (then by feature pixel) and merges points that
   share both the cell and the feature pixel (several depth bins of one pixel often fall into
   one cell) into *pairs*. The sorted order gives per-cell intervals (``crow``: CSR row
   pointers over the flattened ``B * ny * nx`` cells). The index is cached, keyed by the
   geometry tensor's content, so a fixed rig pays for the sort once.
2. Forward: pair weights ``w[p] = sum of depth over the pair's points`` (a segment sum of
   scalars), then ``bev = S @ feat`` with ``S`` the sparse ``(cells, pixels)`` matrix of pair
   weights in CSR layout (one sparse-dense product, CPU and CUDA).
3. Backward (:class:`BEVPoolFunction`): ``grad_feat = S^T @ grad_bev`` (transposed CSR,
   precomputed too) and ``grad_depth[i] = <grad_bev[cell(i)], feat[pixel(i)]>``, evaluated once
   per pair as a sampled dense-dense product on S's sparsity pattern
   (``torch.sparse.sampled_addmm``; other dtypes: chunked gathers, memory bounded by chunk x C).

Memory: O(points) integers for the index plus the BEV map; never O(points x C).
All tensors may live on CPU or CUDA (pure torch ops).
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import dataclass

import torch

from kd3d.structures.bev import BEVGrid

_CHUNK = 1 << 16  # pairs per chunk in the depth-gradient dot products


@dataclass(frozen=True)
class BEVPoolIndex:
    """Precomputed frustum-point -> BEV-cell mapping for one geometry.

    With ``M`` kept points and ``P`` (cell, pixel) pairs:

    point_depth   (M,) int64 flat index into ``depth`` (N, D, H, W), points sorted by pair
    point_pair    (M,) int64 pair of each point (non-decreasing)
    pair_cell     (P,) int64 flat BEV cell ``b * ny * nx + row * nx + col`` (non-decreasing)
    pair_pixel    (P,) int64 flat feature pixel ``(n * H + h) * W + w``
    crow          (B * ny * nx + 1,) int64 CSR row pointers: pairs of cell k are
                  ``crow[k]:crow[k+1]`` (the per-cell intervals)
    t_perm        (P,) int64 pairs ordered by pixel (for the transposed product)
    t_crow        (N * H * W + 1,) int64 CSR row pointers of the transpose
    """

    point_depth: torch.Tensor
    point_pair: torch.Tensor
    pair_cell: torch.Tensor
    pair_pixel: torch.Tensor
    crow: torch.Tensor
    t_perm: torch.Tensor
    t_crow: torch.Tensor
    batch_size: int
    num_cams: int
    depth_shape: tuple[int, int, int, int]  # (N, D, H, W)
    bev_shape: tuple[int, int]  # (ny, nx)

    @property
    def num_points(self) -> int:
        return int(self.point_depth.numel())

    @property
    def intervals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """BEVPoolv2-style intervals over the pairs: (cells, starts, lengths) of non-empty cells."""
        lengths = self.crow[1:] - self.crow[:-1]
        cells = torch.nonzero(lengths > 0).flatten()
        return cells, self.crow[cells], lengths[cells]


def _check_geometry(geom: torch.Tensor, num_cams: int) -> tuple[int, int]:
    if geom.ndim != 5 or geom.shape[-1] != 3:
        raise ValueError(f"bev_pool: geom must be (N, D, H, W, 3) LiDAR-frame xyz, got {tuple(geom.shape)}")
    n = geom.shape[0]
    if num_cams <= 0 or n % num_cams:
        raise ValueError(f"bev_pool: geom has N={n} camera images, not a multiple of num_cams={num_cams}")
    return n // num_cams, n


def build_bev_pool_index(
    geom: torch.Tensor, grid: BEVGrid, *, num_cams: int, z_range: tuple[float, float] = (-10.0, 10.0)
) -> BEVPoolIndex:
    """Sort frustum points by BEV cell; see the module docstring.

    geom: (N, D, H, W, 3) frustum points, LiDAR frame, metres; N = B * num_cams with camera
    ``n`` belonging to sample ``n // num_cams``. Points outside the grid's xy range or outside
    ``z_range = (zmin, zmax)`` (half-open) are dropped.
    """
    batch, n = _check_geometry(geom, num_cams)
    _, d, h, w, _ = geom.shape
    dev = geom.device
    g = geom.detach().reshape(-1, 3)
    col = torch.floor((g[:, 0] - grid.xmin) / grid.dx).long()
    row = torch.floor((g[:, 1] - grid.ymin) / grid.dy).long()
    keep = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny) & (g[:, 2] >= z_range[0]) & (g[:, 2] < z_range[1])
    depth_idx = torch.nonzero(keep).flatten()
    # depth flat index = ((n * D + d) * H + y) * W + x
    hw = h * w
    cam = depth_idx // (d * hw)
    pix_in = depth_idx % hw
    pixel = cam * hw + pix_in
    cell = (cam // num_cams) * (grid.ny * grid.nx) + row[depth_idx] * grid.nx + col[depth_idx]
    num_pixels = n * hw
    num_cells = batch * grid.ny * grid.nx
    key = cell * num_pixels + pixel
    key, order = torch.sort(key, stable=True)
    depth_idx = depth_idx[order]
    pair_key, point_pair = torch.unique_consecutive(key, return_inverse=True)
    pair_cell = pair_key // num_pixels
    pair_pixel = pair_key % num_pixels
    zero = torch.zeros(1, dtype=torch.long, device=dev)
    crow = torch.cat([zero, torch.cumsum(torch.bincount(pair_cell, minlength=num_cells), 0)])
    t_perm = torch.sort(pair_pixel, stable=True)[1]
    t_crow = torch.cat([zero, torch.cumsum(torch.bincount(pair_pixel, minlength=num_pixels), 0)])
    return BEVPoolIndex(
        point_depth=depth_idx, point_pair=point_pair, pair_cell=pair_cell, pair_pixel=pair_pixel,
        crow=crow, t_perm=t_perm, t_crow=t_crow, batch_size=batch, num_cams=num_cams,
        depth_shape=(n, d, h, w), bev_shape=(grid.ny, grid.nx),
    )


class _IndexCache:
    """A small LRU of BEVPoolIndex keyed by geometry content (exact match, not by pointer)."""

    def __init__(self, maxsize: int = 4):
        self.maxsize = maxsize
        self._entries: OrderedDict = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, geom, grid, num_cams, z_range) -> BEVPoolIndex:
        g = geom.detach()
        fingerprint = (tuple(g.shape), g.dtype, str(g.device), grid, num_cams, tuple(z_range))
        for key, (stored, index) in self._entries.items():
            if key[0] == fingerprint and torch.equal(stored, g):
                self._entries.move_to_end(key)
                self.hits += 1
                return index
        self.misses += 1
        index = build_bev_pool_index(g, grid, num_cams=num_cams, z_range=z_range)
        self._entries[(fingerprint, id(index))] = (g.clone(), index)
        while len(self._entries) > self.maxsize:
            self._entries.popitem(last=False)
        return index

    def clear(self) -> None:
        self._entries.clear()
        self.hits = self.misses = 0


INDEX_CACHE = _IndexCache()


def _csr_mm(crow, col, values, nrows, ncols, dense):
    """(nrows, ncols) CSR matrix @ dense (ncols, C) -> (nrows, C)."""
    if col.numel() == 0:
        return dense.new_zeros(nrows, dense.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "sparse CSR support is in beta"
        mat = torch.sparse_csr_tensor(crow, col, values, size=(nrows, ncols), check_invariants=False)
        return mat @ dense


def _sampled_dots(index: BEVPoolIndex, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(P,) ``<rows[pair_cell[p]], cols[pair_pixel[p]]>`` for every pair; rows (cells, C), cols (pixels, C)."""
    num_pairs = index.pair_cell.numel()
    if num_pairs == 0:
        return rows.new_zeros(0)
    if rows.dtype in (torch.float32, torch.float64):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            pattern = torch.sparse_csr_tensor(
                index.crow, index.pair_pixel, rows.new_zeros(num_pairs), size=(rows.shape[0], cols.shape[0]),
                check_invariants=False,
            )
            return torch.sparse.sampled_addmm(pattern, rows, cols.t(), beta=0.0).values()
    out = rows.new_empty(num_pairs)  # other dtypes: chunked gathers, memory bounded by chunk x C
    for s in range(0, num_pairs, _CHUNK):
        e = min(s + _CHUNK, num_pairs)
        out[s:e] = (rows.index_select(0, index.pair_cell[s:e]) * cols.index_select(0, index.pair_pixel[s:e])).sum(1)
    return out


def _pair_weights(depth_flat: torch.Tensor, index: BEVPoolIndex) -> torch.Tensor:
    num_pairs = index.pair_cell.numel()
    w = depth_flat.new_zeros(num_pairs)
    return w.index_add_(0, index.point_pair, depth_flat[index.point_depth])


class BEVPoolFunction(torch.autograd.Function):
    """Autograd op: (depth (N,D,H,W), feat2d (N*H*W, C)) -> cells (B*ny*nx, C)."""

    @staticmethod
    def forward(ctx, depth, feat2d, index: BEVPoolIndex):
        depth_flat = depth.reshape(-1)
        w = _pair_weights(depth_flat, index)
        num_cells = index.crow.numel() - 1
        out = _csr_mm(index.crow, index.pair_pixel, w, num_cells, feat2d.shape[0], feat2d)
        ctx.save_for_backward(w, feat2d)
        ctx.index = index
        ctx.depth_shape = depth.shape
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        w, feat2d = ctx.saved_tensors
        index: BEVPoolIndex = ctx.index
        grad_out = grad_out.contiguous()
        grad_depth = grad_feat = None
        if ctx.needs_input_grad[1]:
            grad_feat = _csr_mm(
                index.t_crow, index.pair_cell[index.t_perm], w[index.t_perm], feat2d.shape[0], grad_out.shape[0], grad_out
            )
        if ctx.needs_input_grad[0]:
            # grad of each pair weight = <grad_bev[cell], feat[pixel]>: a sampled dense-dense
            # product on the CSR pattern (pairs are unique per (cell, pixel), in CSR order)
            grad_w = _sampled_dots(index, grad_out, feat2d)
            grad_depth = grad_out.new_zeros(ctx.depth_shape).reshape(-1)
            grad_depth[index.point_depth] = grad_w[index.point_pair]
            grad_depth = grad_depth.reshape(ctx.depth_shape)
        return grad_depth, grad_feat, None


def _check_inputs(depth, feat, geom):
    if depth.ndim != 4:
        raise ValueError(f"bev_pool: depth must be (N, D, H, W), got {tuple(depth.shape)}")
    n, d, h, w = depth.shape
    if feat.ndim != 4 or feat.shape[0] != n or tuple(feat.shape[2:]) != (h, w):
        raise ValueError(f"bev_pool: feat must be (N={n}, C, H={h}, W={w}), got {tuple(feat.shape)}")
    if tuple(geom.shape) != (n, d, h, w, 3):
        raise ValueError(f"bev_pool: geom must be (N, D, H, W, 3) = {(n, d, h, w, 3)}, got {tuple(geom.shape)}")
    if not (depth.is_floating_point() and feat.is_floating_point()):
        raise ValueError(f"bev_pool: depth and feat must be floating point, got {depth.dtype} and {feat.dtype}")


def _compute_dtype(depth, feat) -> torch.dtype:
    """float64 if either input is float64, else float32 (half/bfloat16 inputs, e.g. under AMP,
    are summed in float32: sparse products need it and the sums are long)."""
    return torch.float64 if torch.float64 in (depth.dtype, feat.dtype) else torch.float32


def bev_pool(
    depth: torch.Tensor,
    feat: torch.Tensor,
    geom: torch.Tensor,
    grid: BEVGrid,
    *,
    num_cams: int,
    z_range: tuple[float, float] = (-10.0, 10.0),
    cache: bool = True,
) -> torch.Tensor:
    """Sum ``depth x feat`` of every frustum point into its BEV cell.

    depth: (N, D, H, W) depth weights (softmax over D); feat: (N, C, H, W) context features;
    geom: (N, D, H, W, 3) frustum points in the LiDAR frame (N = B * num_cams, camera n of
    sample n // num_cams). Returns (B, C, ny, nx) on ``grid``; differentiable w.r.t. depth and
    feat. ``cache`` reuses the sorted index when the same geometry is seen again. Computed in
    float32 (float64 if an input is float64); the output has that dtype.
    """
    _check_inputs(depth, feat, geom)
    dtype = _compute_dtype(depth, feat)
    depth, feat = depth.to(dtype), feat.to(dtype)
    index = (
        INDEX_CACHE.get(geom, grid, num_cams, z_range)
        if cache
        else build_bev_pool_index(geom, grid, num_cams=num_cams, z_range=z_range)
    )
    c = feat.shape[1]
    feat2d = feat.permute(0, 2, 3, 1).reshape(-1, c)
    with torch.autocast(device_type=depth.device.type, enabled=False):
        out = BEVPoolFunction.apply(depth, feat2d, index)
    return out.view(index.batch_size, grid.ny, grid.nx, c).permute(0, 3, 1, 2).contiguous()


def bev_pool_naive(
    depth: torch.Tensor,
    feat: torch.Tensor,
    geom: torch.Tensor,
    grid: BEVGrid,
    *,
    num_cams: int,
    z_range: tuple[float, float] = (-10.0, 10.0),
) -> torch.Tensor:
    """Reference: materialise the (N, D, H, W, C) frustum tensor, then scatter-add. Same I/O as bev_pool."""
    _check_inputs(depth, feat, geom)
    dtype = _compute_dtype(depth, feat)
    depth, feat = depth.to(dtype), feat.to(dtype)
    batch, _ = _check_geometry(geom, num_cams)
    c = feat.shape[1]
    frustum = depth.unsqueeze(-1) * feat.permute(0, 2, 3, 1).unsqueeze(1)  # (N, D, H, W, C)
    g = geom.detach().reshape(-1, 3)
    col = torch.floor((g[:, 0] - grid.xmin) / grid.dx).long()
    row = torch.floor((g[:, 1] - grid.ymin) / grid.dy).long()
    keep = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny) & (g[:, 2] >= z_range[0]) & (g[:, 2] < z_range[1])
    per_cam = geom.shape[1] * geom.shape[2] * geom.shape[3]
    b = torch.arange(geom.shape[0], device=geom.device).repeat_interleave(per_cam) // num_cams
    cell = (b * grid.ny + row) * grid.nx + col
    out = frustum.new_zeros(batch * grid.ny * grid.nx, c)
    out = out.index_add(0, cell[keep], frustum.reshape(-1, c)[keep])
    return out.view(batch, grid.ny, grid.nx, c).permute(0, 3, 1, 2).contiguous()
