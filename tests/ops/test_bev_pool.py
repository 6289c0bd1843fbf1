"""BEV pooling (kd3d.ops.bev_pool) against the materialised reference, in value and gradient."""
import pytest
import torch

from kd3d.ops.bev_pool import INDEX_CACHE, bev_pool, bev_pool_naive, build_bev_pool_index
from kd3d.structures import BEVGrid


def _inputs(n, d, h, w, c, *, dtype=torch.float64, extent=10.0, seed=0, device="cpu", snap=None):
    gen = torch.Generator().manual_seed(seed)
    depth = torch.rand(n, d, h, w, generator=gen, dtype=dtype).softmax(1)
    feat = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
    geom = (torch.rand(n, d, h, w, 3, generator=gen, dtype=dtype) - 0.5) * extent
    if snap is not None:  # few distinct positions -> many points per cell and per (cell, pixel) pair
        geom[..., :2] = torch.round(geom[..., :2] / snap) * snap + 0.1
    return depth.to(device), feat.to(device), geom.to(device)


def test_tiny_gradcheck_float64():
    grid = BEVGrid(-4, -4, 4, 4, 1.0, 1.0)
    depth, feat, geom = _inputs(2, 4, 3, 3, 2, snap=1.5)
    depth.requires_grad_(True)
    feat.requires_grad_(True)
    ref = bev_pool_naive(depth, feat, geom, grid, num_cams=1)
    out = bev_pool(depth, feat, geom, grid, num_cams=1, cache=False)
    assert out.shape == (2, 2, 8, 8)
    assert ref.abs().sum() > 0
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert torch.autograd.gradcheck(lambda dd, ff: bev_pool(dd, ff, geom, grid, num_cams=1), (depth, feat))


def test_midsize_matches_naive_value_and_grad():
    grid = BEVGrid(-20, -16, 20, 16, 0.8, 0.8)
    depth, feat, geom = _inputs(6, 12, 8, 16, 16, dtype=torch.float32, extent=50.0, seed=1)
    geom[..., 2] = geom[..., 2] * 0.2  # some z inside, some outside z_range
    grad_bev = torch.randn(2, 16, grid.ny, grid.nx, generator=torch.Generator().manual_seed(2))
    results = []
    for fn in (bev_pool, bev_pool_naive):
        d = depth.clone().requires_grad_(True)
        f = feat.clone().requires_grad_(True)
        out = fn(d, f, geom, grid, num_cams=3, z_range=(-3.0, 3.0))
        (out * grad_bev).sum().backward()
        results.append((out.detach(), d.grad, f.grad))
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert results[0][0].abs().sum() > 0
    # points above z_range contribute nothing: their depth gradient is exactly zero
    dropped = geom[..., 2] >= 3.0
    assert dropped.any() and results[0][1][dropped].abs().max() == 0


def test_index_intervals_sorted_and_cache_hits():
    grid = BEVGrid(-4, -4, 4, 4, 1.0, 1.0)
    _, _, geom = _inputs(2, 4, 3, 3, 2, snap=2.0)
    index = build_bev_pool_index(geom, grid, num_cams=1)
    assert torch.all(index.pair_cell[1:] >= index.pair_cell[:-1])
    cells, starts, lengths = index.intervals
    assert int(lengths.sum()) == index.pair_cell.numel()
    assert torch.equal(index.pair_cell[starts], cells)
    INDEX_CACHE.clear()
    depth, feat, geom = _inputs(2, 4, 3, 3, 2, snap=2.0)
    bev_pool(depth, feat, geom, grid, num_cams=1)
    bev_pool(depth, feat, geom.clone(), grid, num_cams=1)
    assert (INDEX_CACHE.hits, INDEX_CACHE.misses) == (1, 1)
    geom2 = geom.clone()
    geom2[0, 0, 0, 0, 0] += 3.0  # new content -> new index, not a stale one
    out2 = bev_pool(depth, feat, geom2, grid, num_cams=1)
    assert INDEX_CACHE.misses == 2
    torch.testing.assert_close(out2, bev_pool_naive(depth, feat, geom2, grid, num_cams=1))


def test_bad_shapes_raise():
    grid = BEVGrid(-4, -4, 4, 4, 1.0, 1.0)
    depth, feat, geom = _inputs(2, 4, 3, 3, 2)
    with pytest.raises(ValueError, match="geom"):
        bev_pool(depth, feat, geom[:, :2], grid, num_cams=1)
    with pytest.raises(ValueError, match="num_cams"):
        bev_pool(depth, feat, geom, grid, num_cams=3)
    with pytest.raises(ValueError, match="feat"):
        bev_pool(depth, feat[:, :, :2], geom, grid, num_cams=1)


def test_all_points_outside_grid_gives_zeros():
    grid = BEVGrid(-4, -4, 4, 4, 1.0, 1.0)
    depth, feat, geom = _inputs(2, 4, 3, 3, 2)
    geom = geom + 100.0
    depth.requires_grad_(True)
    out = bev_pool(depth, feat, geom, grid, num_cams=2, cache=False)
    assert out.shape == (1, 2, 8, 8) and out.abs().max() == 0
    out.sum().backward()
    assert depth.grad.abs().max() == 0


def test_mixed_precision_inputs_sum_in_float32():
    grid = BEVGrid(-4, -4, 4, 4, 1.0, 1.0)
    depth, feat, geom = _inputs(2, 4, 3, 3, 4, dtype=torch.float32, snap=1.0)
    feat_bf16 = feat.to(torch.bfloat16).requires_grad_(True)
    out = bev_pool(depth, feat_bf16, geom, grid, num_cams=1, cache=False)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, bev_pool_naive(depth, feat_bf16.float(), geom, grid, num_cams=1))
    out.sum().backward()
    assert feat_bf16.grad.dtype == torch.bfloat16 and feat_bf16.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="floating"):
        bev_pool(depth, feat.long(), geom, grid, num_cams=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: GPU path of bev_pool untested here")
def test_cuda_matches_cpu():
    grid = BEVGrid(-20, -16, 20, 16, 0.8, 0.8)
    depth, feat, geom = _inputs(6, 12, 8, 16, 16, dtype=torch.float32, extent=50.0, seed=3)
    outs = []
    for device in ("cpu", "cuda"):
        d = depth.to(device).requires_grad_(True)
        f = feat.to(device).requires_grad_(True)
        out = bev_pool(d, f, geom.to(device), grid, num_cams=3)
        out.square().sum().backward()
        outs.append([t.detach().cpu() for t in (out, d.grad, f.grad)])
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
