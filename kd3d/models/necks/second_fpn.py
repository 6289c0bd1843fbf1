"""SECOND FPN neck: bring every backbone stage to one stride and concatenate.

Stage k (stride S_k relative to the backbone input) is resampled by ``upsample_strides[k]``:
a value >= 1 is a transposed conv (kernel = stride) that upsamples, a value < 1 is a strided
conv (kernel = stride = 1 / value) that downsamples. All resampled maps must share one stride
``S_k / u_k`` (checked); the output is (B, sum(out_channels), H / S_out, W / S_out).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM, scale_channels


class SECONDFPN(nn.Module):
    """in_channels: per-stage input channels (already scaled); in_strides: per-stage strides
    (``SECONDBackbone.strides``); out_channels: per-stage output widths before ``width``;
    upsample_strides: per-stage resampling factors. ``out_channels_total`` and ``stride`` (the
    common output stride relative to the backbone input) describe the output."""

    def __init__(self, *, in_channels: Sequence[int], in_strides: Sequence[int], out_channels: Sequence[int] = (256, 256),
                 upsample_strides: Sequence[float] = (1, 2), width: float = 1.0):
        super().__init__()
        if not (len(in_channels) == len(in_strides) == len(out_channels) == len(upsample_strides)):
            raise ValueError("SECONDFPN: in_channels, in_strides, out_channels and upsample_strides must have "
                             f"the same length, got {in_channels}, {in_strides}, {out_channels}, {upsample_strides}")
        out_strides = {s / u for s, u in zip(in_strides, upsample_strides)}
        if len(out_strides) != 1:
            raise ValueError(f"SECONDFPN: stages {in_strides} resampled by {upsample_strides} land on different "
                             f"strides {sorted(out_strides)}")
        self.stride = out_strides.pop()
        self.blocks = nn.ModuleList()
        chans = [scale_channels(c, width) for c in out_channels]
        for cin, cout, u in zip(in_channels, chans, upsample_strides):
            if u >= 1:
                k = int(round(u))
                conv = nn.ConvTranspose2d(cin, cout, k, stride=k, bias=False)
            else:
                k = int(round(1 / u))
                conv = nn.Conv2d(cin, cout, k, stride=k, bias=False)
            norm = nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM)
            self.blocks.append(nn.Sequential(conv, norm, nn.ReLU(inplace=True)))
        self.out_channels_total = sum(chans)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """feats: backbone stage outputs -> (B, out_channels_total, H / stride, W / stride)."""
        if len(feats) != len(self.blocks):
            raise ValueError(f"SECONDFPN: expected {len(self.blocks)} stage maps, got {len(feats)}")
        return torch.cat([blk(f) for blk, f in zip(self.blocks, feats)], dim=1)
