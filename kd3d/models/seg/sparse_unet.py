"""Sparse 3D UNet on plain cubic voxels (spconv), and the point <-> voxel bookkeeping.

:func:`voxelize_points` maps every point to a cubic voxel (points outside the range are
clamped to the border voxels so each point keeps a prediction) and averages point features per
voxel. :class:`SparseUNet` is an encoder-decoder: level 0 at the voxel resolution, each
further level a stride-2 sparse conv (``indice_key="down{k}"``) + submanifold convs; the
decoder inverts each downsampling with ``SparseInverseConv3d`` on the same indice key,
concatenates the skip features and fuses them with submanifold convs. All sparse convs have
bias=False and BatchNorm1d + ReLU after them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM, scale_channels
from kd3d.ops.spconv import get_spconv, sparse_conv3d, sparse_tensor, subm_conv3d


def voxelize_points(points: list[torch.Tensor], voxel_size: Sequence[float], point_range: Sequence[float]):
    """Cubic voxelization of a batch.

    points: list[B] of (Ni, F) float32 (LiDAR frame, first 3 columns x y z).
    Returns (coords (V, 4) int32 ``b z y x``, point2voxel (sum Ni,) int64 voxel index of every
    point (points of all samples concatenated), voxel_mean (V, F) mean point features,
    spatial_shape (Z, Y, X)).
    """
    if not points:
        raise ValueError("voxelize_points: empty list of point clouds")
    device = points[0].device
    vs = torch.tensor([float(v) for v in voxel_size], dtype=torch.float64, device=device)
    lo = torch.tensor([float(v) for v in point_range[:3]], dtype=torch.float64, device=device)
    hi = torch.tensor([float(v) for v in point_range[3:]], dtype=torch.float64, device=device)
    grid = torch.round((hi - lo) / vs).long()  # (X, Y, Z)
    keys, feats = [], []
    for b, p in enumerate(points):
        if p.ndim != 2 or p.shape[1] < 3:
            raise ValueError(f"voxelize_points: points[{b}] must be (N, 3+), got {tuple(p.shape)}")
        xyz = p[:, :3].double()
        ijk = torch.floor((xyz - lo) / vs).long()
        ijk = torch.minimum(torch.maximum(ijk, torch.zeros_like(ijk)), grid - 1)
        key = ((b * grid[2] + ijk[:, 2]) * grid[1] + ijk[:, 1]) * grid[0] + ijk[:, 0]
        keys.append(key)
        feats.append(p)
    key = torch.cat(keys)
    feats = torch.cat(feats)
    uniq, inv = torch.unique(key, return_inverse=True)
    V = uniq.shape[0]
    x = uniq % grid[0]
    y = (uniq // grid[0]) % grid[1]
    z = (uniq // (grid[0] * grid[1])) % grid[2]
    bb = uniq // (grid[0] * grid[1] * grid[2])
    coords = torch.stack([bb, z, y, x], dim=1).int()
    count = torch.zeros(V, device=feats.device, dtype=feats.dtype).index_add_(0, inv, torch.ones_like(feats[:, 0]))
    mean = torch.zeros((V, feats.shape[1]), device=feats.device, dtype=feats.dtype).index_add_(0, inv, feats)
    mean = mean / count.clamp(min=1)[:, None]
    return coords, inv, mean, (int(grid[2]), int(grid[1]), int(grid[0]))


def _bn_relu(c: int):
    return (nn.BatchNorm1d(c, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


def _subm_block(cin: int, cout: int, key: str):
    sp = get_spconv()
    return sp.SparseSequential(subm_conv3d(cin, cout, 3, indice_key=key), *_bn_relu(cout),
                               subm_conv3d(cout, cout, 3, indice_key=key), *_bn_relu(cout))


class SparseUNet(nn.Module):
    """in_channels: voxel input features; base_channels: widths per level before ``width``
    (default (32, 64, 128, 256): 3 downsamplings); spatial_shape (Z, Y, X).

    ``out_channels`` = scaled base_channels[0] (the level-0 decoder width).
    """

    def __init__(self, *, in_channels: int, spatial_shape: Sequence[int],
                 base_channels: Sequence[int] = (32, 64, 128, 256), width: float = 1.0):
        super().__init__()
        sp = get_spconv()
        c = [scale_channels(v, width) for v in base_channels]
        self.channels = tuple(c)
        self.spatial_shape = tuple(int(v) for v in spatial_shape)
        self.stem = sp.SparseSequential(subm_conv3d(in_channels, c[0], 3, indice_key="subm0"), *_bn_relu(c[0]))
        self.enc = nn.ModuleList([_subm_block(c[0], c[0], "subm0")])
        self.down = nn.ModuleList()
        for k in range(1, len(c)):
            self.down.append(sp.SparseSequential(
                sparse_conv3d(c[k - 1], c[k], 3, stride=2, padding=1, indice_key=f"down{k}"), *_bn_relu(c[k])))
            self.enc.append(_subm_block(c[k], c[k], f"subm{k}"))
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for k in range(len(c) - 1, 0, -1):
            self.up.append(sp.SparseSequential(
                sp.SparseInverseConv3d(c[k], c[k - 1], 3, indice_key=f"down{k}", bias=False), *_bn_relu(c[k - 1])))
            self.fuse.append(_subm_block(2 * c[k - 1], c[k - 1], f"subm{k - 1}"))
        self.out_channels = c[0]
        shape = self.spatial_shape
        for _ in range(len(c) - 1):  # stride-2, kernel-3, padding-1 sparse convs
            shape = tuple((n - 1) // 2 + 1 for n in shape)
        self.bottleneck_shape = shape  # (Z, Y, X) of the deepest level (``c[-1]`` channels)
        self.bottleneck_stride = 2 ** (len(c) - 1)

    def forward(self, voxel_features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> dict:
        """voxel_features (V, C_in), coords (V, 4) int32 ``b z y x`` -> {"voxel": SparseConvTensor
        (V, out_channels) at level 0 (decoder output, same indices as the input),
        "bottleneck": SparseConvTensor of the deepest encoder level}."""
        x = sparse_tensor(voxel_features, coords, self.spatial_shape, batch_size)
        x = self.enc[0](self.stem(x))
        skips = [x]
        for down, enc in zip(self.down, self.enc[1:]):
            x = enc(down(x))
            skips.append(x)
        bottleneck = x
        for i, (up, fuse) in enumerate(zip(self.up, self.fuse)):
            skip = skips[-2 - i]
            x = up(x)
            x = fuse(x.replace_feature(torch.cat([x.features, skip.features], dim=1)))
        return {"voxel": x, "bottleneck": bottleneck}
