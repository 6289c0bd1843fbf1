"""Each weight-layout trap of kd3d.interop.checkpoints on hand-built tensors, with real spconv / torch
layers and hand-derived expected outputs."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kd3d.interop import checkpoints as ck
from kd3d.ops.spconv import sparse_tensor, subm_conv3d


def _single_voxel_subm(weight_krsc: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Output of a real spconv SubMConv3d on one active voxel: only the centre tap acts."""
    c = weight_krsc.shape[-1]
    conv = subm_conv3d(c, weight_krsc.shape[0], 3, indice_key="t")
    with torch.no_grad():
        conv.weight.copy_(weight_krsc)
    st = sparse_tensor(x[None], torch.tensor([[0, 1, 1, 1]], dtype=torch.int32), (3, 3, 3), 1)
    return conv(st).features[0]


def test_sparse_layouts_round_trip_and_shapes():
    w = torch.arange(2 * 27 * 3, dtype=torch.float32).reshape(2, 3, 3, 3, 3)  # KRSC, out 2, in 3
    for lay in ck.SPARSE_LAYOUTS:
        other = ck.sparse_weight_from_kd3d(w, lay)
        assert tuple(other.shape) == ck.sparse_shape_in(lay, (3, 3, 3), 3, 2)
        assert torch.equal(ck.sparse_weight_to_kd3d(other, lay), w)
    assert tuple(ck.sparse_weight_from_kd3d(w, "RSCK").shape) == (3, 3, 3, 3, 2)
    assert tuple(ck.sparse_weight_from_kd3d(w, "RSKC").shape) == (3, 3, 3, 2, 3)
    with pytest.raises(ValueError, match="layout must be one of"):
        ck.sparse_weight_to_kd3d(w, "KCRS")


def test_in_equals_out_kernel_needs_provenance_not_shape():
    # centre tap M (in x out) of an mmcv / spconv 1.x kernel (RSCK); in == out == 2
    M = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    rsck = torch.zeros(3, 3, 3, 2, 2)
    rsck[1, 1, 1] = M
    x = torch.tensor([1.0, 10.0])
    expected = x @ M  # out_o = sum_i x_i M[i, o] = (31, 42)
    got = _single_voxel_subm(ck.sparse_weight_to_kd3d(rsck, "RSCK"), x)
    assert torch.allclose(got, expected)
    assert torch.allclose(got, torch.tensor([31.0, 42.0]))
    # the same tensor read as spconv 2.0-2.1's RSKC has the same shape and gives x @ M^T: wrong
    wrong = _single_voxel_subm(ck.sparse_weight_to_kd3d(rsck, "RSKC"), x)
    assert tuple(ck.sparse_weight_to_kd3d(rsck, "RSKC").shape) == (2, 3, 3, 3, 2)
    assert torch.allclose(wrong, torch.tensor([21.0, 43.0]))


def test_mmdet3d_metadata_gives_the_layout():
    meta = {"pts_middle_encoder.conv_input.0": {"version": 2}, "pts_middle_encoder.conv_out.0": {"version": 1}}
    assert ck.mmdet3d_sparse_layout(meta, "pts_middle_encoder.conv_input.0") == "KRSC"
    assert ck.mmdet3d_sparse_layout(meta, "pts_middle_encoder.conv_out.0") == "RSCK"
    assert ck.mmdet3d_sparse_layout(meta, "pts_middle_encoder.other.0") is None
    assert ck.mmdet3d_sparse_layout(None, "x") is None


def test_infer_sparse_layout_needs_an_asymmetric_proof():
    k = (3, 3, 3)
    sym = ("b.weight", (3, 3, 3, 4, 4), k, 4, 4)  # RSKC and RSCK alike
    assert ck.infer_sparse_layout([("a.weight", (3, 3, 3, 5, 4), k, 5, 4), sym]) == "RSCK"
    assert ck.infer_sparse_layout([("a.weight", (3, 3, 3, 4, 5), k, 5, 4), sym]) == "RSKC"
    assert ck.infer_sparse_layout([("a.weight", (4, 3, 3, 3, 5), k, 5, 4), ("b.weight", (4, 3, 3, 3, 4), k, 4, 4)]) \
        == "KRSC"
    with pytest.raises(ValueError, match="--sparse-layout"):
        ck.infer_sparse_layout([sym])
    with pytest.raises(ValueError, match="--sparse-layout"):  # two asymmetric convs disagree
        ck.infer_sparse_layout([("a.weight", (3, 3, 3, 5, 4), k, 5, 4), ("c.weight", (3, 3, 3, 4, 5), k, 5, 4)])
    with pytest.raises(ValueError, match="fits no layout"):
        ck.infer_sparse_layout([("a.weight", (3, 3, 3, 7, 7), k, 5, 4)])


def test_conv1x1_to_deconv_equal_outputs_and_naive_copy_is_wrong():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 3, 1, bias=False)
    deconv = nn.ConvTranspose2d(3, 3, 1, stride=1, bias=False)
    x = torch.randn(1, 3, 4, 5)
    with torch.no_grad():
        deconv.weight.copy_(ck.conv1x1_to_deconv(conv.weight))
        assert torch.allclose(deconv(x), conv(x), atol=1e-6)
        deconv.weight.copy_(conv.weight)  # same shape (in == out): loads, and is wrong
        assert (deconv(x) - conv(x)).abs().max() > 1e-2
    assert torch.equal(ck.deconv_to_conv1x1(ck.conv1x1_to_deconv(conv.weight)), conv.weight)
    with pytest.raises(ValueError, match="1x1"):
        ck.conv1x1_to_deconv(torch.zeros(3, 3, 3, 3))


def test_fold_bias_into_bn_hand_value():
    # BN eval: y = gamma * (x + b - mean) / sqrt(var + eps) + beta; x = 2, b = 1, mean = 0.5, var = 3, eps = 1
    bn = nn.BatchNorm1d(1, eps=1.0).eval()
    with torch.no_grad():
        bn.weight.fill_(2.0), bn.bias.fill_(0.25), bn.running_var.fill_(3.0)
        bn.running_mean.copy_(ck.fold_bias_into_bn(torch.tensor([1.0]), torch.tensor([0.5])))
    y = bn(torch.tensor([[2.0]]))
    assert torch.allclose(y, torch.tensor([[2.0 * (2 + 1 - 0.5) / 2.0 + 0.25]]))  # 2.75
    with pytest.raises(ValueError, match="differ"):
        ck.fold_bias_into_bn(torch.zeros(2), torch.zeros(3))


def test_adjust_bn_eps():
    v = ck.adjust_bn_eps(torch.tensor([1.0]), 1e-3, 1e-5)
    assert torch.allclose(v + 1e-5, torch.tensor([1.0 + 1e-3]))
    with pytest.raises(ValueError, match="running_var"):
        ck.adjust_bn_eps(torch.tensor([0.0]), 1e-5, 1e-3, "head.bn")


def test_mmdet3d_v0_rows_dims_and_yaw():
    a = 0.3
    rows = torch.tensor([[math.sin(a)], [math.cos(a)]])
    new = ck.mmdet3d_v0_rot_rows(rows)
    b = math.atan2(float(new[0]), float(new[1]))
    assert b == pytest.approx(-a - math.pi / 2)
    assert torch.equal(ck.mmdet3d_v0_rot_rows_inverse(new), rows)
    dims_v0 = torch.log(torch.tensor([[2.0], [4.5], [1.5]]))  # (w, l, h)
    assert torch.allclose(ck.permute_rows(dims_v0, [1, 0, 2]).exp().flatten(), torch.tensor([4.5, 2.0, 1.5]))
    with pytest.raises(ValueError, match="permutation"):
        ck.permute_rows(dims_v0, [0, 0, 1])
