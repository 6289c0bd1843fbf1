"""Camera BEV student: shapes of the named features, finite loss, gradients, a few steps reduce the loss."""
import numpy as np
import pytest
import torch

from kd3d.models.camera import ResNet, build_camera_bev, camera_bev_nuscenes, camera_bev_synthetic, load_torchvision_resnet
from kd3d.models.camera.rig import ring_rig, scale_crop_aug
from kd3d.structures import BEVGrid
from kd3d.structures.classes import NUSC_ATTRIBUTES
from kd3d.structures.sample import Batch

GRID = BEVGrid(-8.0, -8.0, 8.0, 8.0, 1.0, 1.0)
IMAGE = (32, 64)
TASKS = (("car",), ("pedestrian",))


def tiny_camera_batch(batch_size=2, num_cams=2, seed=0) -> Batch:
    """Hand-made rig, random images, two boxes per sample and LiDAR points on their surfaces."""
    gen = np.random.default_rng(seed)
    intr, c2l = ring_rig(num_cams, IMAGE, hfov_deg=100.0)
    boxes, labels, points = [], [], []
    for b in range(batch_size):
        bx = np.array([[5.0 + b, 1.0, -0.8, 4.2, 1.9, 1.6, 0.3, 1.0, 0.0], [-4.0, -2.5 + b, -0.9, 0.7, 0.7, 1.8, 0.0, 0.0, 0.0]])
        boxes.append(torch.tensor(bx, dtype=torch.float32))
        labels.append(torch.tensor([0, 1]))
        surf = np.concatenate([bx[i, :3] + gen.uniform(-0.3, 0.3, (20, 3)) for i in range(2)])
        points.append(torch.tensor(np.concatenate([surf, np.zeros((40, 2))], 1), dtype=torch.float32))
    aug = np.stack([scale_crop_aug(1.0 + 0.1 * i) for i in range(num_cams)])
    rep = lambda a: torch.tensor(np.repeat(a[None], batch_size, 0), dtype=torch.float32)  # noqa: E731
    return Batch(
        points=points, points_label=[None] * batch_size, gt_boxes=boxes, gt_labels=labels,
        gt_attrs=[torch.tensor([2, 6]) for _ in range(batch_size)],  # vehicle.parked, pedestrian.standing
        images=torch.randn(batch_size, num_cams, 3, *IMAGE, generator=torch.Generator().manual_seed(seed)),
        cam_intrinsics=rep(intr), cam2lidar=rep(c2l), img_aug=rep(aug), bev_aug=torch.eye(4).repeat(batch_size, 1, 1),
    )


def tiny_camera_model(**kw):
    cfg = dict(
        tasks=TASKS, image_size=IMAGE, grid=GRID, depth_bins=(1.0, 13.0, 1.0), resnet_depth=10, resnet_width=8,
        fpn_channels=16, depth_mid_channels=16, context_channels=8, bev_channels=(8, 16), bev_blocks=(1, 1),
        neck_channels=16, head_channels=8, head_kwargs={"attributes": NUSC_ATTRIBUTES},
    )
    cfg.update(kw)
    torch.manual_seed(0)
    return build_camera_bev(**cfg)


def test_forward_named_features_and_finite_loss():
    model = tiny_camera_model()
    batch = tiny_camera_batch()
    out = model(batch)
    f = out.feats
    assert f["bev"].shape == (2, 8, 16, 16)
    assert f["bev_stage1"].shape == (2, 8, 16, 16) and f["bev_stage2"].shape == (2, 16, 8, 8)
    assert f["bev_neck"].shape == (2, 16, 16, 16)
    assert f["heatmap"].shape == (2, 2, 16, 16) and f["reg"].shape == (2, 20, 16, 16)
    assert f["depth"].shape == (4, 12, 2, 4)
    torch.testing.assert_close(f["depth"].sum(1), torch.ones(4, 2, 4))
    assert f["bev"].abs().sum() > 0
    losses = model.loss(out, batch)
    assert set(losses) == {"heatmap", "bbox", "attr", "depth"}
    assert losses["depth"] > 0  # the surface points project into the cameras
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    for name in ("camera.backbone.conv1.weight", "camera.view_transformer.depth_net.depth.weight",
                 "camera.view_transformer.depth_net.cam_mlp.0.weight", "bev_encoder.fuse.0.weight"):
        g = dict(model.named_parameters())[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    model.eval()
    dets = model.predict(model(batch), batch)
    assert len(dets) == 2 and {"boxes", "scores", "labels"} <= set(dets[0])


def test_few_steps_reduce_loss():
    model = tiny_camera_model()
    batch = tiny_camera_batch(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(6):
        losses = model.loss(model(batch), batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert all(np.isfinite(history))
    assert history[-1] < 0.8 * history[0], history


def test_bad_inputs_raise():
    model = tiny_camera_model()
    batch = tiny_camera_batch()
    batch.images = batch.images[..., :32]
    with pytest.raises(ValueError, match="images"):
        model(batch)
    with pytest.raises(ValueError, match="multiples of 32"):
        ResNet(depth=10, width=8)(torch.zeros(1, 3, 40, 64))


def test_torchvision_layout_weights_load(tmp_path):
    src = ResNet(depth=18, width=8)
    state = dict(src.state_dict())
    state["fc.weight"] = torch.zeros(10, 64)  # a classifier, as in torchvision files, is dropped
    path = tmp_path / "resnet18-test.pth"
    torch.save(state, path)
    dst = ResNet(depth=18, width=8)
    assert load_torchvision_resnet(dst, path) == []
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    assert "layer1.0.conv1.weight" in state and "layer2.0.downsample.0.weight" in state
    with pytest.raises(ValueError, match="width"):
        load_torchvision_resnet(ResNet(depth=18, width=16), path)


def test_presets_build():
    from kd3d.models.lidar.presets import head_grid

    small = camera_bev_synthetic()
    assert small.bev_grid == head_grid("synthetic") == BEVGrid(-51.2, -51.2, 51.2, 51.2, 1.6, 1.6)
    assert small.camera.view_transformer.frustum.shape == (30, 8, 14, 3)
    big = camera_bev_nuscenes()
    assert big.bev_grid == head_grid("nuscenes")
    assert big.camera.view_transformer.frustum.shape == (59, 16, 44, 3)
    assert big.bev_grid.shape == (128, 128)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available: GPU path of the camera student untested here")
def test_cuda_matches_cpu():
    model = tiny_camera_model().eval()
    batch = tiny_camera_batch()
    with torch.no_grad():
        ref = model(batch).feats
    model = model.cuda()
    cuda_batch = batch.to("cuda")
    out = model(cuda_batch)
    for key in ("bev", "depth", "bev_neck", "heatmap"):
        torch.testing.assert_close(out.feats[key].detach().cpu(), ref[key], rtol=1e-3, atol=1e-3)
    model.train()
    total = sum(model.loss(model(cuda_batch), cuda_batch).values())
    total.backward()
    assert torch.isfinite(total)
