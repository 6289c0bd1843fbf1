"""LiDAR point-cloud encoders: points -> a dense BEV map (the ``bev`` feature).

* :class:`VoxelEncoder`: voxelize -> mean VFE -> SECOND sparse encoder (stride 8 BEV map):
  kd3d's plain encoder (``block_type="conv_module"``, = MMDetection3D's
  ``SparseEncoder(block_type='conv_module')`` with stages (16,), (32,)*3, (64,)*3, (128,)*3) or
  CenterPoint's residual one (``block_type="basicblock"``,
  :class:`~kd3d.models.backbones.sparse_resnet.ResidualSparseEncoder`).
* :class:`PillarEncoder`: pillarize -> PointPillars pillar feature net (points decorated with
  offsets to the pillar's point mean and to the pillar centre, linear + BN + ReLU, max over
  points) -> scatter to a dense (B, C, ny, nx) canvas (stride 1). ``pfn="mmdet3d"`` uses
  :class:`~kd3d.models.lidar.pillar_net.DecoratedPillarFeatureNet` (11 features, padded slots
  as MMDetection3D treats them) instead of kd3d's 10-feature net.

Both take ``points``: list[B] of (Ni, 5) float32 tensors (LiDAR frame, ``x y z intensity dt``)
and expose ``bev_grid`` (the :class:`BEVGrid` of their output map), ``bev_channels``,
``stride`` (of ``bev`` relative to the voxel / pillar grid) and ``feature_specs()`` of the
``voxel`` and ``bev`` outputs (:mod:`kd3d.models.specs`).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM, SparseEncoder, scale_channels
from kd3d.models.backbones.sparse_resnet import ResidualSparseEncoder
from kd3d.models.lidar.pillar_net import DecoratedPillarFeatureNet
from kd3d.models.specs import FeatureSpec, sparse_spec
from kd3d.ops.spconv import Voxelizer, sparse_tensor
from kd3d.structures.bev import BEVGrid


def mean_vfe(voxels: torch.Tensor, num_points: torch.Tensor) -> torch.Tensor:
    """Mean of the valid points of each voxel: voxels (V, P, F) zero-padded, num_points (V,) -> (V, F)."""
    n = num_points.clamp(min=1).to(voxels.dtype)[:, None]
    return voxels.sum(dim=1) / n


def kept_counts(num_points: torch.Tensor, coords: torch.Tensor, spatial_shape, batch_size: int):
    """SparseConvTensor (V, 1) float32: points the voxelizer kept in each voxel (at most its
    max points per voxel; PointDistiller's importance), indices ``b z y x`` on the voxelizer
    grid ``spatial_shape`` (Z, Y, X). A data statistic: no gradient."""
    return sparse_tensor(num_points.float()[:, None], coords, spatial_shape, batch_size)


class VoxelEncoder(nn.Module):
    """Voxelizer + mean VFE + :class:`SparseEncoder`.

    voxel_size (vx, vy, vz) and point_range [xmin, ymin, zmin, xmax, ymax, zmax] in metres;
    the BEV map is (B, bev_channels, ny / 8, nx / 8) on ``bev_grid`` = grid of cells vx*8.
    block_type: ``"conv_module"`` (kd3d's plain :class:`SparseEncoder`) or ``"basicblock"``
    (:class:`ResidualSparseEncoder`); z_pad: extra z layers of the sparse shape above the voxel
    grid (default 0 for ``conv_module``, 1 for ``basicblock``: 40 -> 41 as CenterPoint builds it).
    """

    def __init__(self, *, voxel_size: Sequence[float], point_range: Sequence[float], width: float = 1.0,
                 max_points_per_voxel: int = 10, max_voxels: int = 60000, num_point_features: int = 5,
                 block_type: str = "conv_module", z_pad: int | None = None):
        super().__init__()
        self.voxelizer = Voxelizer(voxel_size=voxel_size, point_range=point_range,
                                   num_point_features=num_point_features,
                                   max_points_per_voxel=max_points_per_voxel, max_voxels=max_voxels)
        if block_type not in ("conv_module", "basicblock"):
            raise ValueError(f"VoxelEncoder: block_type must be 'conv_module' or 'basicblock', got {block_type!r}")
        self.block_type = block_type
        if z_pad is None:
            z_pad = 1 if block_type == "basicblock" else 0
        Z, Y, X = self.voxelizer.spatial_shape
        shape = (Z + int(z_pad), Y, X)
        if block_type == "basicblock":
            self.sparse = ResidualSparseEncoder(in_channels=num_point_features, spatial_shape=shape, width=width)
        else:
            self.sparse = SparseEncoder(in_channels=num_point_features, spatial_shape=shape, width=width)
        self.bev_channels = self.sparse.bev_channels
        self.bev_grid = BEVGrid.from_range(point_range, voxel_size[:2]).scaled(self.sparse.stride)
        self.stride = self.sparse.stride

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``voxel``: the stride-8 sparse stage; ``bev``: the collapsed map on ``bev_grid``;
        ``voxel_num_points``: one channel on the voxelizer grid."""
        vz = self.voxelizer
        pr = list(vz.point_range)
        if self.sparse.spatial_shape[0] != vz.spatial_shape[0]:  # z_pad: the sparse shape's z extent
            pr[5] = pr[2] + self.sparse.spatial_shape[0] * vz.voxel_size[2]
        vox = sparse_spec(self.sparse.channels[-1], point_range=pr,
                          spatial_shape=self.sparse.voxel_shape, stride=self.stride)
        counts = sparse_spec(1, point_range=vz.point_range, spatial_shape=vz.spatial_shape, stride=1,
                             voxel_size=vz.voxel_size)
        return {"voxel": vox, "bev": FeatureSpec(self.bev_channels, "bev", self.stride, grid=self.bev_grid),
                "voxel_num_points": counts}

    def forward(self, points: list[torch.Tensor]) -> dict:
        """-> {"voxel": SparseConvTensor (stride 8 stage), "bev": (B, bev_channels, H, W),
        "voxel_num_points": :func:`kept_counts`}."""
        voxels, coords, num = self.voxelizer.batch(points)
        feats = mean_vfe(voxels, num)
        out = dict(self.sparse(feats, coords, len(points)))
        out["voxel_num_points"] = kept_counts(num, coords, self.voxelizer.spatial_shape, len(points))
        return out


class PillarFeatureNet(nn.Module):
    """PointPillars PFN: (V, P, 5) points -> (V, C) pillar features.

    Each point ``x y z i dt`` is decorated with ``xyz - mean_xyz(pillar)`` and
    ``xy - pillar centre xy`` -> 10 features; padded points are zeroed; Linear (no bias) +
    BatchNorm1d + ReLU; max over the points of the pillar.
    """

    def __init__(self, *, in_channels: int, out_channels: int, voxel_size: Sequence[float], point_range: Sequence[float]):
        super().__init__()
        self.vx, self.vy = float(voxel_size[0]), float(voxel_size[1])
        self.x0 = float(point_range[0]) + self.vx / 2
        self.y0 = float(point_range[1]) + self.vy / 2
        self.linear = nn.Linear(in_channels + 5, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, voxels: torch.Tensor, num_points: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """voxels (V, P, F), num_points (V,), coords (V, 4) ``b z y x`` -> (V, C)."""
        V, P, _ = voxels.shape
        valid = (torch.arange(P, device=voxels.device)[None, :] < num_points[:, None]).to(voxels.dtype)
        mean_xyz = (voxels[..., :3] * valid[..., None]).sum(1) / num_points.clamp(min=1)[:, None].to(voxels.dtype)
        f_cluster = voxels[..., :3] - mean_xyz[:, None, :]
        cx = coords[:, 3].to(voxels.dtype) * self.vx + self.x0
        cy = coords[:, 2].to(voxels.dtype) * self.vy + self.y0
        f_center = voxels[..., :2] - torch.stack([cx, cy], dim=1)[:, None, :]
        x = torch.cat([voxels, f_cluster, f_center], dim=-1)
        mask = valid.bool()
        # BatchNorm statistics over the real points only; padded slots never win the max
        y = torch.relu(self.norm(self.linear(x[mask])))
        out = y.new_full((V, P, y.shape[-1]), float("-inf"))
        out[mask] = y
        return out.max(dim=1).values


class PillarEncoder(nn.Module):
    """Pillarize + :class:`PillarFeatureNet` + scatter to a dense canvas.

    voxel_size (px, py) pillar size (the z size is the whole z range), point_range as above;
    the BEV map is (B, C, ny, nx) on ``bev_grid`` (cell = pillar), C = 64 * width.
    pfn: ``"kd3d"`` (:class:`PillarFeatureNet`, 10 features, padded slots left out) or
    ``"mmdet3d"`` (:class:`DecoratedPillarFeatureNet`, 11 features, padded slots zeroed and kept).
    """

    def __init__(self, *, voxel_size: Sequence[float], point_range: Sequence[float], width: float = 1.0,
                 feat_channels: int = 64, max_points_per_voxel: int = 20, max_voxels: int = 30000,
                 num_point_features: int = 5, pfn: str = "kd3d"):
        super().__init__()
        pr = [float(v) for v in point_range]
        vs = [float(voxel_size[0]), float(voxel_size[1]), pr[5] - pr[2]]
        self.voxelizer = Voxelizer(voxel_size=vs, point_range=pr, num_point_features=num_point_features,
                                   max_points_per_voxel=max_points_per_voxel, max_voxels=max_voxels)
        c = scale_channels(feat_channels, width)
        if pfn == "kd3d":
            self.pfn = PillarFeatureNet(in_channels=num_point_features, out_channels=c, voxel_size=vs,
                                        point_range=pr)
        elif pfn == "mmdet3d":
            self.pfn = DecoratedPillarFeatureNet(in_channels=num_point_features, out_channels=c, voxel_size=vs,
                                                 point_range=pr)
        else:
            raise ValueError(f"PillarEncoder: pfn must be 'kd3d' or 'mmdet3d', got {pfn!r}")
        self.bev_channels = c
        self.bev_grid = BEVGrid.from_range(pr, vs[:2])
        self.stride = 1

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``voxel``: the (V, C) pillar features on the (1, ny, nx) pillar grid (kind ``pillar``);
        ``bev``: the scattered canvas on ``bev_grid``; ``voxel_num_points``: one channel on the
        pillar grid."""
        ny, nx = self.bev_grid.shape
        pillars = sparse_spec(self.bev_channels, point_range=self.voxelizer.point_range, spatial_shape=(1, ny, nx),
                              stride=1, kind="pillar")
        return {"voxel": pillars, "bev": FeatureSpec(self.bev_channels, "bev", 1, grid=self.bev_grid),
                "voxel_num_points": dataclasses.replace(pillars, channels=1)}

    def forward(self, points: list[torch.Tensor]) -> dict:
        """-> {"voxel": SparseConvTensor of the (V, C) pillar features on the (1, ny, nx) pillar
        grid (indices ``b 0 y x``), "bev": (B, C, ny, nx) the scattered canvas,
        "voxel_num_points": :func:`kept_counts` on the same pillar grid}."""
        voxels, coords, num = self.voxelizer.batch(points)
        feats = self.pfn(voxels, num, coords)
        B = len(points)
        ny, nx = self.bev_grid.shape
        canvas = feats.new_zeros((B, self.bev_channels, ny * nx))
        flat = coords[:, 2].long() * nx + coords[:, 3].long()
        b = coords[:, 0].long()
        canvas = canvas.permute(0, 2, 1).index_put((b, flat), feats).permute(0, 2, 1)
        pillars = sparse_tensor(feats, coords, (1, ny, nx), B)
        return {"voxel": pillars, "bev": canvas.reshape(B, self.bev_channels, ny, nx),
                "voxel_num_points": kept_counts(num, coords, (1, ny, nx), B)}
