import numpy as np
import pytest
import torch

from kd3d.models.seg import sparse_unet_seg, voxelize_points
from kd3d.ops.spconv import is_sparse_tensor
from kd3d.structures.sample import Sample, collate

RANGE = (-6.4, -6.4, -3.2, 6.4, 6.4, 3.2)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _sample(i, rng, n_key=600, n_sweep=200):
    # ground plane (label 11) + a car blob (label 4) + sweep points without labels
    ground = np.c_[rng.uniform(-6, 6, (n_key // 2, 2)), np.full(n_key // 2, -1.8)]
    car = rng.normal([2.0, 1.0, -0.8], [0.8, 0.4, 0.3], (n_key - n_key // 2, 3))
    key = np.concatenate([ground, car])
    sweep = rng.uniform(-6, 6, (n_sweep, 3))
    xyz = np.concatenate([key, sweep])
    pts = np.c_[xyz, rng.uniform(0, 1, len(xyz)), np.r_[np.zeros(n_key), np.full(n_sweep, 0.05)]].astype(np.float32)
    labels = np.r_[np.full(n_key // 2, 11), np.full(n_key - n_key // 2, 4)].astype(np.int64)
    labels[:10] = 0  # some ignore
    return Sample(token=f"s{i}", points=pts, num_key_points=n_key, points_label=labels)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return collate([_sample(0, rng), _sample(1, rng, n_key=400)])


def _model(width=0.25):
    return sparse_unet_seg(point_range=RANGE, voxel_size=0.2, width=width)


def test_voxelize_points_mapping():
    pts = [torch.tensor([[0.05, 0.05, 0.05, 1.0], [0.15, 0.1, 0.1, 3.0], [0.25, 0.0, 0.0, 0.0]]),
           torch.tensor([[0.05, 0.05, 0.05, 5.0], [100.0, 0.0, 0.0, 0.0]])]
    coords, p2v, mean, shape = voxelize_points(pts, (0.2, 0.2, 0.2), (-1.0, -1.0, -1.0, 1.0, 1.0, 1.0))
    assert shape == (10, 10, 10)
    assert coords.shape == (4, 4)
    assert p2v[0] == p2v[1] and p2v[0] != p2v[2] and p2v[0] != p2v[3]
    assert mean[p2v[0], 3].item() == pytest.approx(2.0)
    assert coords[p2v[0]].tolist() == [0, 5, 5, 5]
    assert coords[p2v[2]].tolist() == [0, 5, 5, 6]
    assert coords[p2v[4]].tolist() == [1, 5, 5, 9]  # clamped to the border voxel


def test_forward_backward_named_features(batch):
    torch.manual_seed(0)
    model = _model()
    out = model(batch)
    f = out.feats
    n = sum(p.shape[0] for p in batch.points)
    assert f["point_feats"].shape[0] == n and f["point_logits"].shape == (n, 17)
    assert is_sparse_tensor(f["voxel"]) and is_sparse_tensor(f["voxel_logits"])
    assert f["voxel_logits"].features.shape == (f["voxel"].features.shape[0], 17)
    losses = model.loss(out, batch)
    total = sum(losses.values())
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.unet.stem[0].weight.grad.abs().sum() > 0


def test_fit_and_predict(batch):
    torch.manual_seed(0)
    model = _model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(12):
        loss = sum(model.loss(model(batch), batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses
    # BN momentum 0.01 barely moves the running stats in 12 steps: recalibrate them, then eval
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    with torch.no_grad():
        model(batch)
    model.eval()
    with torch.no_grad():
        res = model.predict(model(batch), batch)
    assert [r["point_labels"].shape for r in res] == [(600,), (400,)]
    for r, lab in zip(res, batch.points_label):
        lab = lab.numpy()
        assert r["point_labels"].min() >= 1 and r["point_labels"].max() <= 16
        acc = (r["point_labels"][lab > 0] == lab[lab > 0]).mean()
        assert acc > 0.8, acc


def test_width_and_errors(batch):
    full, half = sparse_unet_seg(point_range=RANGE, voxel_size=0.2), _model(0.5)
    assert full.unet.channels == (32, 64, 128, 256) and half.unet.channels == (16, 32, 64, 128)
    assert 3.0 < sum(p.numel() for p in full.parameters()) / sum(p.numel() for p in half.parameters()) < 4.5
    bad = collate([_sample(0, np.random.default_rng(1))])
    bad.points_label[0] = bad.points_label[0][:5]
    model = _model()
    with pytest.raises(ValueError, match="points_label"):
        model.loss(model(bad), bad)
    with pytest.raises(ValueError, match="scale"):
        sparse_unet_seg(scale="semantickitti")
