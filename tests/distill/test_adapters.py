"""Adapters: channel 1x1, metric BEV resampling, sparse->dense, sparse matching by coordinates."""
import pytest
import torch

from kd3d.distill.adapters import (BEVResample, ChannelAdapter, SparseToDense, grid_for_map, match_sparse,
                                   resample_map, sample_bev)
from kd3d.ops.spconv import sparse_tensor
from kd3d.structures import BEVGrid


def _ramp(grid, axis=0):
    """(1, 1, H, W) map whose value is the metric x (axis 0) or y (axis 1) of the cell centre."""
    c = torch.as_tensor(grid.cell_centers()[..., axis], dtype=torch.float32)
    return c[None, None]


def test_channel_adapter_dense_points_sparse_share_weights():
    torch.manual_seed(0)
    a = ChannelAdapter(3, 5)
    x = torch.randn(2, 3, 4, 4)
    pts = x.permute(0, 2, 3, 1).reshape(-1, 3)
    dense = a(x).permute(0, 2, 3, 1).reshape(-1, 5)
    assert torch.allclose(a(pts), dense, atol=1e-6)
    st = sparse_tensor(pts[:4], torch.tensor([[0, 0, 0, i] for i in range(4)]), [1, 1, 4], 1)
    out = a(st)
    assert out.features.shape == (4, 5) and torch.equal(out.indices, st.indices)
    with pytest.raises(ValueError, match="ChannelAdapter"):
        a(torch.zeros(3, 3, 3))


def test_bev_resample_downsample_is_cell_average_of_ramp():
    src = BEVGrid(0, 0, 4, 4, 1, 1)
    dst = BEVGrid(0, 0, 4, 4, 2, 2)
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4)
    out = BEVResample(src=src, dst=dst)(x)
    # dst cell (0, 0) centre (1, 1) lies between src cells (0,0),(0,1),(1,0),(1,1): mean of 0,1,4,5
    assert out.shape == (1, 1, 2, 2)
    assert out[0, 0, 0, 0].item() == pytest.approx(2.5)
    assert out[0, 0, 1, 1].item() == pytest.approx((10 + 11 + 14 + 15) / 4)


def test_bev_resample_offset_range_and_outside_zero():
    src = BEVGrid(0, 0, 4, 4, 1, 1)
    dst = BEVGrid(1, 1, 5, 3, 1, 1)  # shifted by one cell; x beyond 4 is outside the source
    x = torch.arange(16, dtype=torch.float32).view(1, 1, 4, 4) + 1
    out = resample_map(x, src, dst)
    assert out.shape == (1, 1, 2, 4)
    assert out[0, 0, 0, 0].item() == pytest.approx(x[0, 0, 1, 1].item())  # centre (1.5, 1.5)
    assert out[0, 0, 1, 2].item() == pytest.approx(x[0, 0, 2, 3].item())  # centre (3.5, 2.5)
    assert out[0, 0, 0, 3].item() == pytest.approx(0.0)  # centre (4.5, 1.5) outside
    assert resample_map(x, src, src) is x
    with pytest.raises(ValueError, match="source grid"):
        resample_map(torch.zeros(1, 1, 3, 3), src, dst)


def test_sample_bev_reproduces_linear_ramp_and_grid_for_map():
    grid = BEVGrid(-4, -2, 4, 2, 0.5, 0.5)
    ramp_x = _ramp(grid, 0).repeat(2, 1, 1, 1)
    ramp_y = _ramp(grid, 1).repeat(2, 1, 1, 1)
    xy = torch.tensor([[[1.3, -0.7], [-2.1, 1.2]]]).repeat(2, 1, 1)
    assert torch.allclose(sample_bev(ramp_x, grid, xy)[..., 0], xy[..., 0], atol=1e-5)
    assert torch.allclose(sample_bev(ramp_y, grid, xy)[..., 0], xy[..., 1], atol=1e-5)
    assert grid_for_map(grid, (6, 8)) == BEVGrid(-4, -2, 4, 2, 1.0, 4 / 6)


def test_sparse_to_dense_modes():
    f = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    idx = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 2], [1, 1, 0, 0]])
    st = sparse_tensor(f, idx, [2, 2, 3], 2)
    cat = SparseToDense(reduce="concat")(st)
    assert cat.shape == (2, 4, 2, 3)
    assert cat[0, :, 1, 2].tolist() == [1.0, 2.0, 10.0, 20.0]  # channel-major, z-minor
    assert SparseToDense(reduce="sum")(st)[0, :, 1, 2].tolist() == [3.0, 30.0]
    assert SparseToDense(reduce="max")(st)[1, :, 0, 0].tolist() == [3.0, 30.0]
    with pytest.raises(TypeError):
        SparseToDense()(f)


def test_match_sparse_intersection_and_identity():
    ia = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 0, 0], [1, 1, 1, 1]])
    ib = torch.tensor([[1, 1, 1, 1], [0, 0, 0, 0], [0, 1, 0, 0]])
    a = sparse_tensor(torch.arange(4.0)[:, None], ia, [2, 2, 2], 2)
    b = sparse_tensor(torch.tensor([[30.0, 1.0], [0.0, 1.0], [99.0, 1.0]]), ib, [2, 2, 2], 2)
    fs, ft, idx = match_sparse(a, b)
    assert idx.tolist() == [[0, 0, 0, 0], [1, 1, 1, 1]]
    assert fs[:, 0].tolist() == [0.0, 3.0] and ft[:, 0].tolist() == [0.0, 30.0]
    fs, ft, idx = match_sparse(a, a)
    assert len(idx) == 4
    c = sparse_tensor(torch.zeros(1, 1), ia[:1], [2, 2, 4], 2)
    with pytest.raises(ValueError, match="spatial shapes"):
        match_sparse(a, c)
