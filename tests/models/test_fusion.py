"""Fusion detector: LiDAR voxel encoder + camera LSS branch on one BEVGrid, CenterHead on top."""
import numpy as np
import pytest
import torch

from kd3d.models.camera.rig import ring_rig, scale_crop_aug
from kd3d.models.fusion import fusion_centerpoint
from kd3d.structures import BEVGrid
from kd3d.structures.sample import Batch

IMAGE = (32, 64)
RANGE = (-8.0, -8.0, -5.0, 8.0, 8.0, 3.0)
CLASSES = ("car", "pedestrian")
TINY_CAMERA = dict(image_size=IMAGE, depth_bins=(1.0, 13.0, 1.0), resnet_depth=10, resnet_width=8, fpn_channels=16,
                   depth_mid_channels=16, context_channels=8)


def tiny_fusion_batch(batch_size=2, num_cams=2, seed=0) -> Batch:
    """Ring of cameras, random images; LiDAR: ground points plus points on two boxes per sample."""
    gen = np.random.default_rng(seed)
    intr, c2l = ring_rig(num_cams, IMAGE, hfov_deg=100.0)
    boxes, labels, points = [], [], []
    for b in range(batch_size):
        bx = np.array([[4.0 + b, 1.0, -0.8, 4.2, 1.9, 1.6, 0.3, 1.0, 0.0], [-4.0, -2.5 + b, -0.9, 0.7, 0.7, 1.8, 0.0, 0.0, 0.0]])
        boxes.append(torch.tensor(bx, dtype=torch.float32))
        labels.append(torch.tensor([0, 1]))
        surf = np.concatenate([bx[i, :3] + gen.uniform(-0.4, 0.4, (60, 3)) for i in range(2)])
        ground = np.column_stack([gen.uniform(-7.9, 7.9, (200, 2)), np.full(200, -1.7)])
        xyz = np.concatenate([surf, ground])
        points.append(torch.tensor(np.column_stack([xyz, gen.uniform(0, 1, len(xyz)), np.zeros(len(xyz))]),
                                   dtype=torch.float32))
    aug = np.stack([scale_crop_aug(1.0 + 0.1 * i) for i in range(num_cams)])
    rep = lambda a: torch.tensor(np.repeat(a[None], batch_size, 0), dtype=torch.float32)  # noqa: E731
    return Batch(
        points=points, points_label=[None] * batch_size, gt_boxes=boxes, gt_labels=labels,
        gt_attrs=[torch.tensor([2, 6]) for _ in range(batch_size)],  # vehicle.parked, pedestrian.standing
        images=torch.randn(batch_size, num_cams, 3, *IMAGE, generator=torch.Generator().manual_seed(seed)),
        cam_intrinsics=rep(intr), cam2lidar=rep(c2l), img_aug=rep(aug), bev_aug=torch.eye(4).repeat(batch_size, 1, 1),
    )


def tiny_fusion_model(**kw):
    torch.manual_seed(0)
    cfg = dict(scale="synthetic", width=0.125, class_names=CLASSES, point_range=RANGE, voxel_size=(0.25, 0.25, 0.25),
               layer_nums=(1, 1), max_voxels=4000, camera=TINY_CAMERA, depth_loss_weight=1.0)
    cfg.update(kw)
    return fusion_centerpoint(**cfg)


def test_forward_named_features_loss_and_grads():
    model = tiny_fusion_model()
    assert model.bev_grid == BEVGrid(-8.0, -8.0, 8.0, 8.0, 2.0, 2.0)
    batch = tiny_fusion_batch()
    out = model(batch)
    f = out.feats
    for key in ("voxel", "bev", "bev_lidar", "bev_camera", "bev_stage1", "bev_stage2", "bev_neck", "heatmap", "reg", "depth"):
        assert key in f, key
    assert f["bev_lidar"].shape[-2:] == f["bev_camera"].shape[-2:] == f["bev"].shape[-2:] == (8, 8)
    assert f["bev_camera"].shape[:2] == (2, 8)
    assert f["bev_camera"].abs().sum() > 0 and f["bev_lidar"].abs().sum() > 0
    assert f["heatmap"].shape == (2, 2, 8, 8) and f["reg"].shape == (2, 20, 8, 8)
    assert f["depth"].shape == (4, 12, 2, 4)
    losses = model.loss(out, batch)
    assert set(losses) == {"heatmap", "bbox", "attr", "depth"}
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    params = dict(model.named_parameters())
    for name in ("camera.backbone.conv1.weight", "fuser.fuse.0.weight", "camera.view_transformer.depth_net.depth.weight"):
        g = params[name].grad
        assert g is not None and torch.isfinite(g).all() and g.abs().sum() > 0, name
    lidar_grads = [p.grad for n, p in params.items() if n.startswith("lidar_encoder.") and p.grad is not None]
    assert lidar_grads and any(g.abs().sum() > 0 for g in lidar_grads)
    model.eval()
    dets = model.predict(model(batch), batch)
    assert len(dets) == 2 and {"boxes", "scores", "labels"} <= set(dets[0])


def test_few_steps_reduce_loss():
    model = tiny_fusion_model()
    batch = tiny_fusion_batch(seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(6):
        total = sum(model.loss(model(batch), batch).values())
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(total.item())
    assert all(np.isfinite(history))
    assert history[-1] < 0.8 * history[0], history


def test_grid_mismatch_raises():
    from kd3d.models.camera.student import build_camera_branch
    from kd3d.models.fusion import FusionCenterPoint

    model = tiny_fusion_model()
    wrong = build_camera_branch(grid=BEVGrid(-8.0, -8.0, 8.0, 8.0, 1.0, 1.0), **TINY_CAMERA)
    with pytest.raises(ValueError, match="grid"):
        FusionCenterPoint(lidar_encoder=model.lidar_encoder, camera=wrong, fuser=model.fuser, backbone=model.backbone,
                          neck=model.neck, head=model.head)


def test_presets_share_the_lidar_head_grid():
    from kd3d.models.lidar.presets import head_grid

    assert fusion_centerpoint(scale="synthetic").bev_grid == head_grid("synthetic")


def test_load_lidar_detector_weights():
    from kd3d.models.lidar.presets import centerpoint_voxel

    torch.manual_seed(1)
    lidar = centerpoint_voxel(scale="synthetic", width=0.125, class_names=CLASSES, point_range=RANGE,
                              voxel_size=(0.25, 0.25, 0.25), layer_nums=(1, 1), max_voxels=4000)
    model = tiny_fusion_model()
    untouched = model.load_lidar_detector(lidar.state_dict())
    assert untouched and all(k.startswith(("camera.", "fuser.")) for k in untouched)
    fused = model.state_dict()
    for k, v in lidar.state_dict().items():
        target = "lidar_encoder." + k[len("encoder."):] if k.startswith("encoder.") else k
        assert torch.equal(fused[target], v), k
    wider = centerpoint_voxel(scale="synthetic", width=0.25, class_names=CLASSES, point_range=RANGE,
                              voxel_size=(0.25, 0.25, 0.25), layer_nums=(1, 1), max_voxels=4000)
    with pytest.raises(ValueError, match="shape"):
        model.load_lidar_detector(wider.state_dict())
