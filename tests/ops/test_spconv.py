"""Sparse convolutions (through kd3d's spconv shim) equal a dense conv3d reference, forward and
backward, and voxelization behaves on CPU."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from kd3d.ops.spconv import Voxelizer, sparse_conv3d, sparse_tensor, subm_conv3d

SHAPE = (6, 7, 8)  # Z, Y, X


def random_sparse(batch=2, channels=2, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = set()
    while len(idx) < n:
        b = int(torch.randint(batch, (1,), generator=g))
        z, y, x = (int(torch.randint(s, (1,), generator=g)) for s in SHAPE)
        idx.add((b, z, y, x))
    indices = torch.tensor(sorted(idx), dtype=torch.int32)
    feats = torch.randn(len(indices), channels, generator=g, dtype=torch.float64)
    return feats, indices


def to_dense(feats, indices, batch, shape=SHAPE):
    dense = torch.zeros(batch, feats.shape[1], *shape, dtype=feats.dtype)
    b, z, y, x = indices.long().unbind(1)
    dense[b, :, z, y, x] = feats
    return dense


def dense_weight(conv):
    # spconv weight (out, kz, ky, kx, in) -> torch (out, in, kz, ky, kx)
    return conv.weight.permute(0, 4, 1, 2, 3)


@pytest.mark.parametrize("kind", ["subm", "strided"])
def test_sparse_conv_equals_dense_forward_backward(kind):
    torch.manual_seed(0)
    feats, indices = random_sparse()
    conv = (subm_conv3d(2, 4, indice_key="k") if kind == "subm" else sparse_conv3d(2, 4, 3, stride=2, padding=1)).double()
    feats_s = feats.clone().requires_grad_()
    out = conv(sparse_tensor(feats_s, indices, SHAPE, 2))
    feats_d = feats.clone().requires_grad_()
    dense_in = to_dense(feats_d, indices, 2)
    stride = 1 if kind == "subm" else 2
    ref = F.conv3d(dense_in, dense_weight(conv), stride=stride, padding=1)
    ob, oz, oy, ox = out.indices.long().unbind(1)
    ref_at = ref[ob, :, oz, oy, ox]
    assert torch.allclose(out.features, ref_at, atol=1e-10)
    if kind == "strided":  # every nonzero dense output site is an output site
        mask = torch.zeros(ref.shape[0], *ref.shape[2:], dtype=torch.bool)
        mask[ob, oz, oy, ox] = True
        assert ref.abs().sum(1)[~mask].max() < 1e-12
    # backward: same upstream gradient on the sparse sites
    gout = torch.randn_like(out.features)
    (out.features * gout).sum().backward()
    w_grad_sparse = conv.weight.grad.clone()
    conv.weight.grad = None
    (ref_at * gout).sum().backward()
    assert torch.allclose(feats_s.grad, feats_d.grad, atol=1e-10)
    assert torch.allclose(w_grad_sparse, conv.weight.grad, atol=1e-10)


def test_bias_rejected_and_eval_mode_runs():
    with pytest.raises(ValueError, match="bias=False"):
        subm_conv3d(2, 4, bias=True)
    feats, indices = random_sparse()
    conv = torch.nn.Sequential(subm_conv3d(2, 4, indice_key="a")).double().eval()
    with torch.no_grad():
        out = conv(sparse_tensor(feats, indices, SHAPE, 2))
    assert out.features.shape == (len(indices), 4)


def test_voxelizer_assigns_points_and_drops_bad_ones():
    vox = Voxelizer(voxel_size=[1.0, 1.0, 1.0], point_range=[0, 0, 0, 4, 4, 2], max_points_per_voxel=3)
    assert vox.spatial_shape == [2, 4, 4]
    pts = torch.tensor(
        [[0.5, 0.5, 0.5, 1, 0], [0.6, 0.5, 0.5, 2, 0], [3.5, 2.5, 1.5, 3, 0],
         [9.0, 0.0, 0.0, 4, 0], [float("nan"), 1, 1, 1, 0]], dtype=torch.float32)
    voxels, coords, num = vox(pts)
    order = np.lexsort(coords.numpy().T[::-1])
    assert coords[order].tolist() == [[0, 0, 0], [1, 2, 3]]
    assert num[order].tolist() == [2, 1]
    assert voxels.shape[1:] == (3, 5)
    v, c, n = vox(torch.zeros((0, 5)))
    assert v.shape[0] == c.shape[0] == n.shape[0] == 0
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        vox(torch.zeros((3, 4)))
    _, cb, _ = vox.batch([pts, pts[:1]])
    assert cb.shape == (3, 4) and cb[:, 0].tolist().count(1) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA path of spconv needs a GPU (spconv-cuXXX build)")
def test_sparse_conv_cuda_matches_cpu():
    feats, indices = random_sparse(channels=2)
    conv = subm_conv3d(2, 4, indice_key="c").float()
    out_cpu = conv(sparse_tensor(feats.float(), indices, SHAPE, 2)).features
    conv_gpu = conv.cuda()
    out_gpu = conv_gpu(sparse_tensor(feats.float().cuda(), indices.cuda(), SHAPE, 2)).features.cpu()
    assert torch.allclose(out_cpu, out_gpu, atol=1e-4)


def test_cpu_multithread_race_is_guarded():
    """spconv's CPU scatter path races with >1 torch threads; the shim must make it exact."""
    torch.set_num_threads(max(2, torch.get_num_threads()))
    bad = 0
    for trial in range(150):
        torch.manual_seed(trial)
        feats, indices = random_sparse(seed=trial)
        conv = sparse_conv3d(2, 4, 3, stride=2, padding=1).double()
        out = conv(sparse_tensor(feats, indices, SHAPE, 2))
        ref = F.conv3d(to_dense(feats, indices, 2), dense_weight(conv), stride=2, padding=1)
        ob, oz, oy, ox = out.indices.long().unbind(1)
        bad += int((out.features - ref[ob, :, oz, oy, ox]).abs().max() > 1e-10)
    assert bad == 0
