import numpy as np
import pytest
import torch

from kd3d.models.base import ModelOutput
from kd3d.models.lidar import centerpoint_pillar, centerpoint_voxel, head_grid
from kd3d.ops.spconv import is_sparse_tensor
from kd3d.structures import BEVGrid, Boxes3D
from kd3d.structures.sample import Sample, collate

CLASSES = ("car", "pedestrian")
SMALL = dict(point_range=(-12.8, -12.8, -3.0, 12.8, 12.8, 2.0), class_names=CLASSES, layer_nums=(1, 1))


def _sample(i, rng, n=1500):
    boxes = np.array([[4.0, 3.0, -1.0, 4.0, 1.8, 1.6, 0.3, 1.0, 0.0],
                      [-6.0, -5.0, -1.0, 0.8, 0.7, 1.8, 1.0, np.nan, np.nan]])
    pts = rng.uniform([-12, -12, -3, 0, 0], [12, 12, 1, 1, 0.3], (n, 5))
    # dense clusters inside the boxes so there is something to detect
    for b in boxes:
        c = rng.normal(size=(200, 5)) * [b[3] / 4, b[4] / 4, b[5] / 4, 0.1, 0.0] + [b[0], b[1], b[2], 0.5, 0.0]
        pts = np.concatenate([pts, c])
    pts = pts.astype(np.float32)
    return Sample(token=f"s{i}", points=pts, num_key_points=len(pts), gt_boxes=Boxes3D(boxes),
                  gt_labels=np.array([0, 1]), gt_attrs=np.array([0, 6]), gt_num_points=np.full(2, 200))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # intra-op threads thrash on a shared 2-core machine (10x slower sparse BatchNorm)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    return collate([_sample(0, rng), _sample(1, rng)])


def _voxel(width=0.25, **kw):
    return centerpoint_voxel(voxel_size=(0.2, 0.2, 0.2), width=width, **SMALL, **kw)


def _pillar(width=0.25, **kw):
    return centerpoint_pillar(pillar_size=(0.4, 0.4), width=width, point_range=SMALL["point_range"],
                              class_names=CLASSES, layer_nums=(1, 1, 1), **kw)


@pytest.mark.parametrize("build", [_voxel, _pillar])
def test_forward_backward_named_features(build, batch):
    torch.manual_seed(0)
    model = build()
    out = model(batch)
    assert isinstance(out, ModelOutput)
    f = out.feats
    for key in ("voxel", "bev", "bev_stage1", "bev_stage2", "bev_neck", "heatmap", "reg"):
        assert key in f, key
    assert model.bev_grid == BEVGrid(-12.8, -12.8, 12.8, 12.8, 1.6, 1.6)
    assert f["bev_neck"].shape[-2:] == (16, 16) and f["heatmap"].shape == (2, 2, 16, 16)
    assert f["reg"].shape == (2, 20, 16, 16)
    if build is _voxel:
        assert is_sparse_tensor(f["voxel"]) and f["bev"].shape[-2:] == (16, 16)
    else:
        assert is_sparse_tensor(f["voxel"]) and list(f["voxel"].spatial_shape) == [1, 64, 64]
        assert f["bev"].shape[-2:] == (64, 64) and "bev_stage3" in f
        # the canvas holds each pillar's features at its (y, x) cell
        idx = f["voxel"].indices.long()
        dense = f["bev"][idx[:, 0], :, idx[:, 2], idx[:, 3]]
        assert torch.equal(dense, f["voxel"].features)
        assert int((f["bev"].abs().sum(1) > 0).sum()) <= idx.shape[0]
    losses = model.loss(out, batch)
    assert set(losses) == {"heatmap", "bbox", "attr"}
    total = sum(losses.values())
    assert torch.isfinite(total) and total.item() > 0
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in model.encoder.parameters() if g is not None for g in [g.grad])


@pytest.mark.parametrize("build", [_voxel, _pillar])
def test_eval_mode_predict(build, batch):
    model = build().eval()
    with torch.no_grad():
        out = model(batch)
        res = model.predict(out, batch)
    assert len(res) == 2
    for r in res:
        assert isinstance(r["boxes"], Boxes3D)
        n = len(r["boxes"])
        assert r["scores"].shape == (n,) and r["labels"].shape == (n,) and r["attrs"].shape == (n,)
        assert set(np.unique(r["labels"])) <= {0, 1}
        # nuScenes attributes: car -> vehicle.* (0..2), pedestrian -> pedestrian.* (5..7)
        assert np.all(np.where(r["labels"] == 0, r["attrs"] <= 2, r["attrs"] >= 5))
        assert np.all(np.diff(r["scores"]) <= 0)


@pytest.mark.parametrize("build", [_voxel, _pillar])
def test_few_steps_reduce_loss(build, batch):
    torch.manual_seed(0)
    model = build()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss = sum(model.loss(model(batch), batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_width_multiplier_scales_channels():
    full, half, quarter = (_voxel(width=w) for w in (1.0, 0.5, 0.25))
    assert full.encoder.sparse.channels == (16, 32, 64, 128)
    assert half.encoder.sparse.channels == (8, 16, 32, 64)
    assert quarter.encoder.sparse.channels == (4, 8, 16, 32)
    assert full.backbone.out_channels_list == (128, 256) and half.backbone.out_channels_list == (64, 128)
    assert full.neck.out_channels_total == 512 and quarter.neck.out_channels_total == 128
    n_full = sum(p.numel() for p in full.parameters())
    n_half = sum(p.numel() for p in half.parameters())
    assert 3.0 < n_full / n_half < 4.5  # conv weights scale with width^2
    p1, p5 = _pillar(width=1.0), _pillar(width=0.5)
    assert p1.encoder.bev_channels == 64 and p5.encoder.bev_channels == 32
    assert p1.neck.out_channels_total == 384 and p5.neck.out_channels_total == 192


def test_presets_share_head_grid():
    g = head_grid("synthetic")
    assert g == BEVGrid(-51.2, -51.2, 51.2, 51.2, 1.6, 1.6) and g.shape == (64, 64)
    n = head_grid("nuscenes")
    assert n.shape == (128, 128) and n.dx == pytest.approx(0.8)
    # pillar and voxel presets of one scale land on the same grid
    assert _voxel().bev_grid == _pillar().bev_grid
    with pytest.raises(ValueError, match="scale"):
        centerpoint_voxel(scale="kitti-huge")
    with pytest.raises(ValueError, match="Z ="):
        centerpoint_voxel(voxel_size=(0.2, 0.2, 0.5), **SMALL)
