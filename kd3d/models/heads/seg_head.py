"""Point/voxel segmentation head: per-point logits from voxel features plus a point MLP branch."""
from __future__ import annotations

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM


def _mlp(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cin, cout, bias=False), nn.BatchNorm1d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
                         nn.ReLU(inplace=True))


class SegHead(nn.Module):
    """point_in_channels: raw per-point features (e.g. 5 + 3 offsets to the voxel centre);
    voxel_channels: UNet output width; num_classes: logits per point/voxel (index 0 = ignore is
    kept as a channel so labels index logits directly).

    ``forward(point_inputs (N, P), voxel_feats (V, C), point2voxel (N,))`` ->
    ``point_feats (N, C)`` = point MLP(point_inputs) + voxel_feats[point2voxel] (fused by a
    linear layer), ``point_logits (N, K)`` and ``voxel_logits (V, K)``.
    """

    def __init__(self, *, point_in_channels: int, voxel_channels: int, num_classes: int):
        super().__init__()
        c = int(voxel_channels)
        self.point_mlp = nn.Sequential(_mlp(point_in_channels, c), _mlp(c, c))
        self.fuse = _mlp(2 * c, c)
        self.point_cls = nn.Linear(c, num_classes)
        self.voxel_cls = nn.Linear(c, num_classes)
        self.num_classes = int(num_classes)

    def forward(self, point_inputs: torch.Tensor, voxel_feats: torch.Tensor, point2voxel: torch.Tensor):
        gathered = voxel_feats[point2voxel]
        point_feats = self.fuse(torch.cat([self.point_mlp(point_inputs), gathered], dim=1)) + gathered
        return point_feats, self.point_cls(point_feats), self.voxel_cls(voxel_feats)
