"""Adapters: trainable or geometric maps applied to student features before a loss.

* :class:`ChannelAdapter` - 1x1 conv mapping C_s -> C_t channels for (B, C, H, W) maps,
  (N, C) point/voxel features and ``SparseConvTensor`` features alike.
* :class:`BEVResample` - explicit resampling of a BEV map from one metric :class:`BEVGrid` to
  another (bilinear ``grid_sample`` at the destination cell centres; zeros outside).
* :class:`SparseToDense` - ``SparseConvTensor`` (B, C, Z, Y, X) -> dense BEV (B, C', Y, X).
* :func:`match_sparse` - align two ``SparseConvTensor`` by voxel coordinates (same indices,
  or the intersection of the coordinate sets).
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.ops.spconv import is_sparse_tensor
from kd3d.structures.bev import BEVGrid


class ChannelAdapter(nn.Module):
    """1x1 conv ``C_s -> C_t`` (FitNet regressor). Accepts (B, C, H, W), (N, C) or a
    ``SparseConvTensor`` (features replaced, indices kept)."""

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        if is_sparse_tensor(x):
            return x.replace_feature(self._linear(x.features))
        if x.ndim == 2:
            return self._linear(x)
        if x.ndim != 4:
            raise ValueError(f"ChannelAdapter expects (B, C, H, W), (N, C) or SparseConvTensor, got {tuple(x.shape)}")
        return self.conv(x)

    def _linear(self, f: torch.Tensor) -> torch.Tensor:
        w = self.conv.weight[:, :, 0, 0]
        return F.linear(f, w, self.conv.bias)


def _norm_coords(xy: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """Metric (..., 2) xy -> grid_sample coordinates in [-1, 1] (align_corners=False)."""
    gx = 2.0 * (xy[..., 0] - grid.xmin) / (grid.xmax - grid.xmin) - 1.0
    gy = 2.0 * (xy[..., 1] - grid.ymin) / (grid.ymax - grid.ymin) - 1.0
    return torch.stack([gx, gy], dim=-1)


def sample_bev(feat: torch.Tensor, grid: BEVGrid, xy: torch.Tensor) -> torch.Tensor:
    """Bilinear sampling of a BEV map at metric points.

    ``feat`` (B, C, H, W) on ``grid`` (H = ny rows along y, W = nx columns along x);
    ``xy`` (B, P, 2) LiDAR-frame metres -> (B, P, C). Points outside the grid read zeros.
    """
    if feat.shape[-2:] != grid.shape:
        raise ValueError(f"sample_bev: map {tuple(feat.shape[-2:])} does not match grid shape {grid.shape}")
    g = _norm_coords(xy.to(feat.dtype), grid).unsqueeze(1)  # (B, 1, P, 2)
    out = F.grid_sample(feat, g, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, :, 0].transpose(1, 2)


def grid_for_map(grid: BEVGrid, shape) -> BEVGrid:
    """The grid with ``grid``'s metric range and a map of ``shape`` (H, W) (e.g. a backbone stage)."""
    h, w = int(shape[-2]), int(shape[-1])
    return BEVGrid(grid.xmin, grid.ymin, grid.xmax, grid.ymax,
                   (grid.xmax - grid.xmin) / w, (grid.ymax - grid.ymin) / h)


def resample_map(x: torch.Tensor, src: BEVGrid, dst: BEVGrid, *, mode: str = "bilinear") -> torch.Tensor:
    """Functional :class:`BEVResample`: (B, C, src.ny, src.nx) -> (B, C, dst.ny, dst.nx)."""
    if src == dst:
        return x
    if x.ndim != 4 or x.shape[-2:] != src.shape:
        raise ValueError(f"resample_map: expected (B, C, {src.ny}, {src.nx}) on the source grid, got {tuple(x.shape)}")
    g = _resample_coords(src, dst).to(device=x.device, dtype=x.dtype).expand(x.shape[0], -1, -1, -1)
    return F.grid_sample(x, g, mode=mode, padding_mode="zeros", align_corners=False)


@functools.lru_cache(maxsize=32)
def _resample_coords(src: BEVGrid, dst: BEVGrid) -> torch.Tensor:
    centres = torch.as_tensor(dst.cell_centers(), dtype=torch.float64)  # (H, W, 2)
    return _norm_coords(centres, src).float()[None]


class BEVResample(nn.Module):
    """Resample a (B, C, H_src, W_src) map on ``src`` to (B, C, H_dst, W_dst) on ``dst``.

    Each destination cell centre is mapped to metres and read bilinearly from the source map
    (``mode='nearest'`` optional); cells outside the source range become 0. Identity (no copy)
    when the grids are equal.
    """

    def __init__(self, *, src: BEVGrid, dst: BEVGrid, mode: str = "bilinear"):
        super().__init__()
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"BEVResample: mode must be 'bilinear' or 'nearest', got {mode!r}")
        self.src, self.dst, self.mode = src, dst, mode
        self.register_buffer("_coords", _resample_coords(src, dst).clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.src == self.dst:
            return x
        if x.ndim != 4 or x.shape[-2:] != self.src.shape:
            raise ValueError(f"BEVResample: expected (B, C, {self.src.ny}, {self.src.nx}) on the source grid, "
                             f"got {tuple(x.shape)}")
        g = self._coords.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        return F.grid_sample(x, g, mode=self.mode, padding_mode="zeros", align_corners=False)

    def extra_repr(self) -> str:
        return f"src={self.src}, dst={self.dst}, mode={self.mode}"


class SparseToDense(nn.Module):
    """``SparseConvTensor`` with spatial shape (Z, Y, X) -> dense BEV (B, C', Y, X).

    ``reduce``: 'concat' stacks the Z slices into channels (C' = C * Z, SECOND's height
    compression), 'sum' / 'max' reduce over Z (C' = C).
    """

    def __init__(self, *, reduce: str = "concat"):
        super().__init__()
        if reduce not in ("concat", "sum", "max"):
            raise ValueError(f"SparseToDense: reduce must be concat/sum/max, got {reduce!r}")
        self.reduce = reduce

    def forward(self, x):
        if not is_sparse_tensor(x):
            raise TypeError(f"SparseToDense expects a SparseConvTensor, got {type(x).__name__}")
        dense = x.dense()  # (B, C, Z, Y, X)
        b, c, z, h, w = dense.shape
        if self.reduce == "concat":
            return dense.reshape(b, c * z, h, w)
        if self.reduce == "sum":
            return dense.sum(dim=2)
        return dense.max(dim=2).values


def _linear_keys(indices: torch.Tensor, spatial_shape) -> torch.Tensor:
    z, y, x = (int(v) for v in spatial_shape)
    i = indices.long()
    return ((i[:, 0] * z + i[:, 1]) * y + i[:, 2]) * x + i[:, 3]


def match_sparse(student, teacher):
    """Align two ``SparseConvTensor`` by coordinates.

    Returns ``(fs (M, C_s), ft (M, C_t), indices (M, 4) int32 b z y x)`` over the voxels present
    in both (all of them when the indices are identical). Spatial shapes must agree.
    """
    if not (is_sparse_tensor(student) and is_sparse_tensor(teacher)):
        raise TypeError("match_sparse expects two SparseConvTensor")
    if list(student.spatial_shape) != list(teacher.spatial_shape):
        raise ValueError(f"match_sparse: spatial shapes differ: student {list(student.spatial_shape)} "
                         f"vs teacher {list(teacher.spatial_shape)} (distill at a stage with equal strides)")
    si, ti = student.indices, teacher.indices
    if si.shape == ti.shape and torch.equal(si, ti):
        return student.features, teacher.features, si
    ks = _linear_keys(si, student.spatial_shape)
    kt = _linear_keys(ti, teacher.spatial_shape)
    kt_sorted, order = torch.sort(kt)
    pos = torch.searchsorted(kt_sorted, ks).clamp(max=max(kt_sorted.numel() - 1, 0))
    if kt_sorted.numel() == 0:
        found = torch.zeros_like(ks, dtype=torch.bool)
    else:
        found = kt_sorted[pos] == ks
    s_idx = torch.nonzero(found, as_tuple=True)[0]
    t_idx = order[pos[s_idx]]
    return student.features[s_idx], teacher.features[t_idx], si[s_idx]
