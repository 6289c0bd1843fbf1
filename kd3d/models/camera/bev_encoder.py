"""2D BEV encoder for camera (and fusion) detectors: residual stages + an FPN-style neck.

in: (B, Cin, H, W) pooled BEV map on the model's ``BEVGrid``.
out: dict ``bev_stage1`` (B, C1, H/s1, W/s1), ``bev_stage2`` (B, C2, H/(s1 s2), ...), ...,
``bev_neck`` (B, out_channels, H/s1, W/s1): every stage upsampled to stage 1's resolution,
concatenated and fused by a 3x3 conv. With the default ``strides=(1, 2)`` the neck lies on the
input grid, so the head's grid equals the pooling grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from kd3d.models.camera.backbone import BasicBlock, conv_bn_relu


class BEVEncoder(nn.Module):
    def __init__(
        self, *, in_channels: int, channels: tuple[int, ...] = (64, 128), blocks: tuple[int, ...] = (2, 2),
        strides: tuple[int, ...] = (1, 2), out_channels: int = 128,
    ):
        super().__init__()
        if not (len(channels) == len(blocks) == len(strides)) or not channels:
            raise ValueError(f"BEVEncoder: channels {channels}, blocks {blocks}, strides {strides} must have equal, nonzero length")
        self.stages = nn.ModuleList()
        cin = in_channels
        for c, n, s in zip(channels, blocks, strides):
            down = None
            if s != 1 or cin != c:
                down = nn.Sequential(nn.Conv2d(cin, c, 1, s, bias=False), nn.BatchNorm2d(c))
            layers = [BasicBlock(cin, c, s, down)] + [BasicBlock(c, c) for _ in range(n - 1)]
            self.stages.append(nn.Sequential(*layers))
            cin = c
        self.lateral = nn.ModuleList(conv_bn_relu(c, out_channels // len(channels), 1) for c in channels)
        self.fuse = conv_bn_relu(out_channels // len(channels) * len(channels), out_channels, 3)
        self.strides = tuple(strides)
        self.channels = tuple(channels)
        self.out_channels = out_channels
        self.neck_stride = strides[0]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {}
        stages = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            feats[f"bev_stage{i + 1}"] = x
            stages.append(x)
        size = stages[0].shape[-2:]
        ups = [
            lat(s) if s.shape[-2:] == size else F.interpolate(lat(s), size=size, mode="bilinear", align_corners=False)
            for lat, s in zip(self.lateral, stages)
        ]
        feats["bev_neck"] = self.fuse(torch.cat(ups, 1))
        return feats
