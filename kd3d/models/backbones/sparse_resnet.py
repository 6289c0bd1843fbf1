"""Residual SECOND sparse encoder: CenterPoint's nuScenes voxel teacher (``block_type="basicblock"``).

The same network as MMDetection3D's ``SparseEncoder(block_type='basicblock')`` of
``centerpoint_voxel01_second_secfpn`` and OpenPCDet's ``VoxelResBackBone8x``. Layer table at
width 1 (every count times ``width``; sparse convs have no bias, each is followed by
BatchNorm1d(eps 1e-3) and ReLU; ``B(c)`` = residual basic block of two submanifold 3x3x3 convs
c -> c, BN after each, ReLU after the first and after the skip sum)::

    conv_input                subm 3x3x3   5 -> 16                    z 41  (stride 1)
    encoder_layer1   B(16) B(16)  sparse 3x3x3 s2 p1      16 -> 32    z 41 -> 21
    encoder_layer2   B(32) B(32)  sparse 3x3x3 s2 p1      32 -> 64    z 21 -> 11
    encoder_layer3   B(64) B(64)  sparse 3x3x3 s2 p(0,1,1) 64 -> 128  z 11 -> 5  (stride 8)
    encoder_layer4   B(128) B(128)                                     z 5
    conv_out         sparse (3,1,1) s(2,1,1) p0 128 -> 128             z 5 -> 2
    BEV              dense (B, 128 * 2 = 256, Y / 8, X / 8)

The sparse shape is the voxel grid with one extra z layer (40 + 1 = 41 for 0.2 m voxels over
-5..3 m), as both reference implementations build it. Module names follow MMDetection3D's
state-dict keys (``conv_input.0.weight``, ``encoder_layers.encoder_layer1.0.conv1.weight``,
``...encoder_layer1.2.0.weight`` for the strided conv, ``conv_out.0.weight``), in the same order
and with the same tensor shapes (spconv 2.x layout (out, kD, kH, kW, in)). OpenPCDet groups the
same layers differently (the strided conv starts its next stage: ``conv2.0`` = mmdet3d's
``encoder_layer1.2``) and puts a bias on every basic-block conv.

Input: voxel features (V, C_in), coords (V, 4) int32 ``b z y x`` on ``spatial_shape`` (Z, Y, X).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.backbones.sparse_encoder import BN_EPS, BN_MOMENTUM, _conv_out_len, scale_channels
from kd3d.ops.spconv import get_spconv, sparse_conv3d, sparse_tensor, subm_conv3d

# (channels per layer, padding of each layer) of every stage: mmdet3d's encoder_channels /
# encoder_paddings for CenterPoint. In a stage, a layer is a basic block except the last of
# every stage but the last stage, which is the strided sparse conv.
CENTERPOINT_CHANNELS = ((16, 16, 32), (32, 32, 64), (64, 64, 128), (128, 128))
CENTERPOINT_PADDINGS = ((0, 0, 1), (0, 0, 1), (0, 0, (0, 1, 1)), (0, 0))


def _bn(c: int, momentum: float) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=BN_EPS, momentum=momentum)


def _conv_bn_relu(conv, cout: int, momentum: float):
    return get_spconv().SparseSequential(conv, _bn(cout, momentum), nn.ReLU(inplace=True))


class SparseBasicBlock(nn.Module):
    """Residual block on a SparseConvTensor (V, c): subm conv -> BN -> ReLU -> subm conv -> BN,
    plus the input features, ReLU. Same sparsity in and out (submanifold, stride 1).
    Attributes ``conv1, bn1, conv2, bn2`` (mmdet3d's / OpenPCDet's names)."""

    def __init__(self, channels: int, *, indice_key: str | None = None, bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.conv1 = subm_conv3d(channels, channels, 3, indice_key=indice_key)
        self.bn1 = _bn(channels, bn_momentum)
        self.conv2 = subm_conv3d(channels, channels, 3, indice_key=indice_key)
        self.bn2 = _bn(channels, bn_momentum)

    def forward(self, x):
        """x: SparseConvTensor (V, c) -> SparseConvTensor (V, c) on the same indices."""
        identity = x.features
        out = self.conv1(x)
        out = out.replace_feature(torch.relu(self.bn1(out.features)))
        out = self.conv2(out)
        return out.replace_feature(torch.relu(self.bn2(out.features) + identity))


class ResidualSparseEncoder(nn.Module):
    """in_channels: voxel feature size; spatial_shape: (Z, Y, X) sparse shape (Z = voxel layers
    + 1 for CenterPoint; Y, X divisible by 8); encoder_channels / encoder_paddings: the stage
    table (default :data:`CENTERPOINT_CHANNELS` / :data:`CENTERPOINT_PADDINGS`);
    base_channels: conv_input width (16); output_channels: conv_out width (128); width: channel
    multiplier of every count; bn_momentum: of every BatchNorm (0.01 in both references).

    Attributes as :class:`~kd3d.models.backbones.sparse_encoder.SparseEncoder`: ``channels``
    (output width of each stage), ``voxel_shape`` (Z, Y/8, X/8) of the last stage (the
    ``voxel`` feature), ``out_channels``, ``bev_channels`` = out_channels * D_out, ``stride`` 8,
    ``bev_shape``.
    """

    def __init__(self, *, in_channels: int, spatial_shape: Sequence[int],
                 encoder_channels=CENTERPOINT_CHANNELS, encoder_paddings=CENTERPOINT_PADDINGS,
                 base_channels: int = 16, output_channels: int = 128, width: float = 1.0,
                 bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        Z, Y, X = (int(v) for v in spatial_shape)
        if len(encoder_channels) != len(encoder_paddings) or any(
                len(c) != len(p) for c, p in zip(encoder_channels, encoder_paddings)):
            raise ValueError(f"ResidualSparseEncoder: encoder_channels {encoder_channels} and encoder_paddings "
                             f"{encoder_paddings} must have the same layout")
        nstride = len(encoder_channels) - 1
        if Y % 2 ** nstride or X % 2 ** nstride:
            raise ValueError(f"ResidualSparseEncoder: spatial_shape (Z, Y, X) = {spatial_shape}: Y and X must be "
                             f"divisible by {2 ** nstride}")
        self.spatial_shape = (Z, Y, X)
        cin = scale_channels(base_channels, width)
        self.conv_input = _conv_bn_relu(subm_conv3d(in_channels, cin, 3, indice_key="subm1"), cin, bn_momentum)
        self.encoder_layers = nn.ModuleDict()
        z, yx, chans = Z, (Y, X), []
        for i, (layer_chans, pads) in enumerate(zip(encoder_channels, encoder_paddings)):
            layers = nn.ModuleList()
            last_stage = i == len(encoder_channels) - 1
            for j, (c, pad) in enumerate(zip(layer_chans, pads)):
                c = scale_channels(c, width)
                if j == len(layer_chans) - 1 and not last_stage:
                    pad = tuple(pad) if isinstance(pad, (tuple, list)) else (pad,) * 3
                    conv = sparse_conv3d(cin, c, 3, stride=2, padding=pad, indice_key=f"spconv{i + 1}")
                    layers.append(_conv_bn_relu(conv, c, bn_momentum))
                    z = _conv_out_len(z, 3, 2, pad[0])
                    yx = (yx[0] // 2, yx[1] // 2)
                else:
                    if c != cin:
                        raise ValueError(f"ResidualSparseEncoder: basic block {i + 1}.{j} needs equal in/out "
                                         f"channels, got {cin} -> {c}")
                    layers.append(SparseBasicBlock(c, indice_key=f"res{i + 1}", bn_momentum=bn_momentum))
                cin = c
            self.encoder_layers[f"encoder_layer{i + 1}"] = layers
            chans.append(cin)
        cout = scale_channels(output_channels, width)
        self.conv_out = _conv_bn_relu(
            sparse_conv3d(cin, cout, (3, 1, 1), stride=(2, 1, 1), padding=0, indice_key="spconv_down2"), cout,
            bn_momentum)
        self.channels = tuple(chans)
        self.voxel_shape = (z, yx[0], yx[1])
        z_out = _conv_out_len(z, 3, 2, 0)
        if z_out < 1:
            raise ValueError(f"ResidualSparseEncoder: Z = {Z} voxels is too few for this layout")
        self.out_channels = cout
        self.bev_channels = cout * z_out
        self.stride = 2 ** nstride
        self.bev_shape = yx

    def forward(self, voxel_features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> dict:
        """voxel_features (V, C_in), coords (V, 4) int32 ``b z y x`` -> {"voxel": SparseConvTensor
        (last stage, stride 8, ``channels[-1]``), "bev": (B, bev_channels, Y/8, X/8), channels
        ordered c * D_out + d (conv_out channel c, z layer d)}. Runs in float32 under autocast, as
        MMDetection3D's SparseEncoder does."""
        with torch.autocast(device_type=voxel_features.device.type, enabled=False):
            x = self.conv_input(sparse_tensor(voxel_features.float(), coords, self.spatial_shape, batch_size))
            for layers in self.encoder_layers.values():
                for layer in layers:
                    x = layer(x)
            dense = self.conv_out(x).dense()  # (B, C, D, H, W)
        B, C, D, H, W = dense.shape
        return {"voxel": x, "bev": dense.reshape(B, C * D, H, W)}
