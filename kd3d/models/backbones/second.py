"""SECOND 2D BEV backbone: a stack of stages, each a strided 3x3 conv followed by 3x3 convs.

Input (B, in_channels, H, W) BEV map; stage k output (B, C_k, H / S_k, W / S_k) with
``S_k = prod(layer_strides[:k+1])``. Conv2d layers have no bias and BatchNorm2d + ReLU after.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM, scale_channels


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


class SECONDBackbone(nn.Module):
    """in_channels: input channels (already final, not scaled); layer_nums: extra convs per stage;
    layer_strides: stride of each stage's first conv; out_channels: stage widths before ``width``.

    ``out_channels_list`` (scaled) and ``strides`` (cumulative, relative to the input) describe
    the outputs.
    """

    def __init__(self, *, in_channels: int, layer_nums: Sequence[int] = (5, 5), layer_strides: Sequence[int] = (1, 2),
                 out_channels: Sequence[int] = (128, 256), width: float = 1.0):
        super().__init__()
        if not (len(layer_nums) == len(layer_strides) == len(out_channels)):
            raise ValueError(f"SECONDBackbone: layer_nums {layer_nums}, layer_strides {layer_strides}, "
                             f"out_channels {out_channels} must have the same length")
        chans = [scale_channels(c, width) for c in out_channels]
        self.stages = nn.ModuleList()
        cin = int(in_channels)
        strides, s = [], 1
        for n, st, c in zip(layer_nums, layer_strides, chans):
            layers = [conv_bn_relu(cin, c, int(st))] + [conv_bn_relu(c, c) for _ in range(int(n))]
            self.stages.append(nn.Sequential(*layers))
            cin = c
            s *= int(st)
            strides.append(s)
        self.out_channels_list = tuple(chans)
        self.strides = tuple(strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x: (B, in_channels, H, W) -> list of stage outputs (B, C_k, H / S_k, W / S_k)."""
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs
