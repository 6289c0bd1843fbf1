"""SECOND-style sparse 3D encoder (spconv), collapsing z into a dense BEV map.

Layout (channels before the width multiplier): input subm 16 -> stage 1: subm 16 ->
stage 2: sparse conv stride 2 -> 32, subm 32 x2 -> stage 3: stride 2 -> 64, subm 64 x2 ->
stage 4: stride 2 (z padding 0) -> 128, subm 128 x2 -> out conv (3, 1, 1) stride (2, 1, 1)
-> 128. Every sparse conv has bias=False and is followed by BatchNorm1d + ReLU.

Input: voxel features (V, C_in) and coords (V, 4) int32 ``b z y x`` on ``spatial_shape``
(Z, Y, X). Output: the last sparse stage (``voxel`` feature, before the out conv) and the dense
BEV map (B, out_channels * D_out, Y / 8, X / 8) with rows along y and columns along x (the
BEVGrid layout).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.ops.spconv import get_spconv, sparse_conv3d, sparse_tensor, subm_conv3d


# BatchNorm settings of every kd3d LiDAR/seg network. Momentum 0.1 (not CenterPoint's 0.01) so
# that running statistics settle within the few hundred steps of a CPU-scale run.
BN_EPS = 1e-3
BN_MOMENTUM = 0.1


def scale_channels(c: int, width: float) -> int:
    """Channel count ``c`` scaled by the width multiplier (at least 1)."""
    return max(1, int(round(c * width)))


def _conv_out_len(n: int, k: int, s: int, p: int) -> int:
    return (n + 2 * p - k) // s + 1


def _block(conv, cout: int):
    sp = get_spconv()
    return sp.SparseSequential(conv, nn.BatchNorm1d(cout, eps=BN_EPS, momentum=BN_MOMENTUM), nn.ReLU(inplace=True))


class SparseEncoder(nn.Module):
    """SECOND sparse encoder.

    in_channels: voxel feature size; spatial_shape: (Z, Y, X) of the voxel grid (Y, X divisible by 8);
    base_channels: (16, 32, 64, 128) stage widths; out_channels: 128; width: channel multiplier
    (applied to every count, so 0.5 / 0.25 students keep the same architecture).

    Attributes: ``bev_channels`` = out_channels * D_out (channels of the dense BEV map),
    ``stride`` = 8, ``bev_shape`` = (Y / 8, X / 8), ``voxel_shape`` = (Z_4, Y / 8, X / 8) spatial
    shape of the stage-4 ``voxel`` output (``channels[3]`` features).
    """

    def __init__(self, *, in_channels: int, spatial_shape: Sequence[int], base_channels=(16, 32, 64, 128),
                 out_channels: int = 128, width: float = 1.0):
        super().__init__()
        sp = get_spconv()
        Z, Y, X = (int(v) for v in spatial_shape)
        if Y % 8 or X % 8:
            raise ValueError(f"SparseEncoder: spatial_shape (Z, Y, X) = {spatial_shape}: Y and X must be divisible by 8")
        c = [scale_channels(v, width) for v in base_channels]
        cout = scale_channels(out_channels, width)
        self.spatial_shape = (Z, Y, X)
        self.channels = tuple(c)
        self.conv_input = _block(subm_conv3d(in_channels, c[0], 3, indice_key="subm1"), c[0])
        self.stage1 = _block(subm_conv3d(c[0], c[0], 3, indice_key="subm1"), c[0])
        self.stage2 = sp.SparseSequential(
            _block(sparse_conv3d(c[0], c[1], 3, stride=2, padding=1, indice_key="spconv2"), c[1]),
            _block(subm_conv3d(c[1], c[1], 3, indice_key="subm2"), c[1]),
            _block(subm_conv3d(c[1], c[1], 3, indice_key="subm2"), c[1]),
        )
        self.stage3 = sp.SparseSequential(
            _block(sparse_conv3d(c[1], c[2], 3, stride=2, padding=1, indice_key="spconv3"), c[2]),
            _block(subm_conv3d(c[2], c[2], 3, indice_key="subm3"), c[2]),
            _block(subm_conv3d(c[2], c[2], 3, indice_key="subm3"), c[2]),
        )
        self.stage4 = sp.SparseSequential(
            _block(sparse_conv3d(c[2], c[3], 3, stride=2, padding=(0, 1, 1), indice_key="spconv4"), c[3]),
            _block(subm_conv3d(c[3], c[3], 3, indice_key="subm4"), c[3]),
            _block(subm_conv3d(c[3], c[3], 3, indice_key="subm4"), c[3]),
        )
        self.conv_out = _block(
            sparse_conv3d(c[3], cout, (3, 1, 1), stride=(2, 1, 1), padding=0, indice_key="spconv_down2"), cout)
        z = _conv_out_len(Z, 3, 2, 1)
        z = _conv_out_len(z, 3, 2, 1)
        z = _conv_out_len(z, 3, 2, 0)
        self.voxel_shape = (z, Y // 8, X // 8)  # stage 4 (the ``voxel`` feature), (Z, Y, X)
        z = _conv_out_len(z, 3, 2, 0)
        if z < 1:
            raise ValueError(f"SparseEncoder: Z = {Z} voxels is too few for the SECOND layout (need >= 25)")
        self.out_channels = cout
        self.bev_channels = cout * z
        self.stride = 8
        self.bev_shape = (Y // 8, X // 8)

    def forward(self, voxel_features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> dict:
        """voxel_features (V, C_in), coords (V, 4) int32 ``b z y x`` -> {"voxel": SparseConvTensor
        (stage 4, stride 8), "bev": (B, bev_channels, Y/8, X/8)}."""
        x = sparse_tensor(voxel_features, coords, self.spatial_shape, batch_size)
        x = self.conv_input(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x4 = self.stage4(x)
        out = self.conv_out(x4)
        dense = out.dense()  # (B, C, D, H, W)
        B, C, D, H, W = dense.shape
        return {"voxel": x4, "bev": dense.reshape(B, C * D, H, W)}
