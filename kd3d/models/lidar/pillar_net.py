"""CenterPoint-pillar feature net as MMDetection3D builds it (``PillarFeatureNet``, legacy=False).

Differs from kd3d's own :class:`~kd3d.models.lidar.encoders.PillarFeatureNet` in two ways, both
needed to reproduce ``centerpoint_pillar02_second_secfpn`` outputs:

* 11 input features per point: ``x y z i dt`` + offsets to the mean of the pillar's kept points
  (3) + offsets to the pillar centre (3, including z: ``z - (z_idx * vz + vz / 2 + zmin)``,
  i.e. ``z + 1`` for the nuScenes pillar of 8 m over -5..3 m);
* padded point slots: the decorated features of the empty slots (the voxelizer pads every
  pillar to ``max_points_per_voxel`` slots) are set to zero, and those zero rows still go
  through Linear + BatchNorm + ReLU: they count in the BatchNorm batch statistics and take
  part in the max (each contributes ``relu(BN(0))``). kd3d's own net leaves them out.

Module tree = MMDetection3D's keys: ``pfn_layers.0.norm`` (BatchNorm1d, eps 1e-3) registered
before ``pfn_layers.0.linear`` (Linear(11, C), no bias).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM


class PFNLayer(nn.Module):
    """Linear (no bias) -> BatchNorm1d over every (pillar, slot) row -> ReLU -> max over slots.
    (V, P, C_in) -> (V, C_out)."""

    def __init__(self, in_channels: int, out_channels: int, *, bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.norm = nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=bn_momentum)
        self.linear = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        V, P, _ = x.shape
        y = self.linear(x.reshape(V * P, -1))
        y = torch.relu(self.norm(y)).reshape(V, P, -1)
        return y.max(dim=1).values


class DecoratedPillarFeatureNet(nn.Module):
    """in_channels: point features (5); out_channels: pillar feature width; voxel_size
    (vx, vy, vz) with vz = the whole z range; point_range [xmin ymin zmin xmax ymax zmax] (m).

    forward(voxels (V, P, F) zero-padded, num_points (V,), coords (V, 4) ``b z y x``) -> (V, C).
    """

    def __init__(self, *, in_channels: int, out_channels: int, voxel_size: Sequence[float],
                 point_range: Sequence[float], bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.vx, self.vy, self.vz = (float(v) for v in voxel_size[:3])
        self.x0 = float(point_range[0]) + self.vx / 2
        self.y0 = float(point_range[1]) + self.vy / 2
        self.z0 = float(point_range[2]) + self.vz / 2
        self.in_channels = int(in_channels) + 6
        self.pfn_layers = nn.ModuleList([PFNLayer(self.in_channels, out_channels, bn_momentum=bn_momentum)])

    def decorate(self, voxels: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """(V, P, F) -> (V, P, F + 6): points, offsets to the kept-point mean, offsets to the
        pillar centre (x, y, z); rows of empty slots all zero."""
        V, P, _ = voxels.shape
        n = num_points.to(voxels.dtype).clamp(min=1)[:, None, None]
        mean = voxels[..., :3].sum(dim=1, keepdim=True) / n
        centre = torch.stack([coords[:, 3].to(voxels.dtype) * self.vx + self.x0,
                              coords[:, 2].to(voxels.dtype) * self.vy + self.y0,
                              coords[:, 1].to(voxels.dtype) * self.vz + self.z0], dim=1)
        x = torch.cat([voxels, voxels[..., :3] - mean, voxels[..., :3] - centre[:, None, :]], dim=-1)
        valid = torch.arange(P, device=voxels.device)[None, :] < num_points[:, None]
        return x * valid[..., None].to(x.dtype)

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        x = self.decorate(voxels, num_points, coords)
        for layer in self.pfn_layers:
            x = layer(x)
        return x
