"""Hard voxelization in first-come order, in plain torch (same result on CPU and CUDA).

This is the order of mmcv's hard voxelization (``mmcv.ops.Voxelization``, CPU and its default
deterministic CUDA kernel; what mmdet3d's ``Det3DDataPreprocessor`` calls) and of spconv's CPU
``PointToVoxel`` (what OpenPCDet's data pipeline calls):

* a point's voxel is ``floor((p - range_min) / voxel_size)`` in float32 per axis; points with a
  coordinate outside ``[0, grid)`` are dropped;
* voxels are numbered in the order of their first point; a point whose voxel would be number
  ``max_voxels`` or later is dropped;
* a voxel keeps its first ``max_points`` points in input order.

spconv's CUDA ``PointToVoxel`` (kd3d's :class:`~kd3d.ops.spconv.Voxelizer` default on a GPU)
numbers voxels in hash-table order and fills them with atomics: with more points or voxels than
the caps, which ones are kept differs from the above and from run to run.
"""
from __future__ import annotations

from typing import Sequence

import torch


def first_come_voxelize(points: torch.Tensor, *, voxel_size: Sequence[float], point_range: Sequence[float],
                        grid_size: Sequence[int], max_points: int, max_voxels: int):
    """points (N, F) float32 -> (voxels (V, max_points, F) zero-padded, coords (V, 3) int32
    ``z y x``, num_points (V,) int32), V <= max_voxels, voxels in order of first appearance;
    ``grid_size`` (X, Y, Z) voxels."""
    dev, N, F = points.device, points.shape[0], points.shape[1]
    vs = torch.tensor([float(v) for v in voxel_size[:3]], dtype=torch.float32, device=dev)
    lo = torch.tensor([float(v) for v in point_range[:3]], dtype=torch.float32, device=dev)
    grid = torch.tensor([int(g) for g in grid_size[:3]], dtype=torch.long, device=dev)
    cell = torch.floor((points[:, :3].float() - lo) / vs).long()  # (N, 3) x y z
    inside = ((cell >= 0) & (cell < grid)).all(dim=1)
    idx = torch.nonzero(inside).squeeze(1)  # ascending: input order
    cell = cell[idx]
    key = (cell[:, 2] * grid[1] + cell[:, 1]) * grid[0] + cell[:, 0]
    uniq, inv = torch.unique(key, return_inverse=True)
    first = torch.full((uniq.shape[0],), N, dtype=torch.long, device=dev)
    first = first.scatter_reduce(0, inv, idx, reduce="amin")
    rank = torch.empty_like(first)
    rank[torch.argsort(first)] = torch.arange(first.shape[0], device=dev)
    vid = rank[inv]  # voxel number of each kept-range point, by first appearance
    # position of each point within its voxel: earlier points of the same voxel (idx ascending)
    perm = torch.argsort(vid, stable=True)
    counts = torch.bincount(vid, minlength=first.shape[0])
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.empty_like(vid)
    pos[perm] = torch.arange(vid.shape[0], device=dev) - starts[vid[perm]]
    keep = (vid < max_voxels) & (pos < max_points)
    V = min(int(first.shape[0]), int(max_voxels))
    voxels = points.new_zeros((V, int(max_points), F))
    voxels[vid[keep], pos[keep]] = points[idx[keep]]
    coords = torch.zeros((V, 3), dtype=torch.int32, device=dev)
    coords[vid[keep]] = cell[keep].flip(1).int()
    num = torch.bincount(vid[keep], minlength=V).int()
    return voxels, coords, num
