"""Every model's ``feature_specs()`` matches its real forward output, key by key (channels,
kind, map size vs grid, sparse spatial shape vs point_range / voxel_size, per-sample rows), at
synthetic and nuScenes scale; and a wrong spec is caught.

The nuScenes-scale models run whole on a few hundred points within +-8 m and one camera at
their image size (full BEV grids, full sparse grids), one thread."""
import dataclasses
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "distill"))
import real_models as rm  # noqa: E402

from kd3d.models.build import ModelConfig, build_model  # noqa: E402
from kd3d.models.camera.rig import ring_rig  # noqa: E402
from kd3d.models.specs import FeatureSpec, check_feature_specs  # noqa: E402
from kd3d.structures.bev import BEVGrid  # noqa: E402
from kd3d.testing.toy import TOY_MODEL  # noqa: E402

# name -> (model name, kwargs, camera image size or None, batch size)
CASES = {
    "voxel_synthetic": ("centerpoint_voxel", {"scale": "synthetic", "width": 0.25}, None, 2),
    "voxel_nuscenes": ("centerpoint_voxel", {"scale": "nuscenes"}, None, 1),
    "pillar_synthetic": ("centerpoint_pillar", {"scale": "synthetic", "width": 0.25}, None, 2),
    "pillar_nuscenes": ("centerpoint_pillar", {"scale": "nuscenes"}, None, 1),
    # mmdet3d / OpenPCDet CenterPoint networks (issue 13): residual encoder z 41, 11-feature pillars
    "voxel_mmdet3d_synthetic": ("centerpoint_voxel", {"scale": "synthetic", "width": 0.25, "block_type": "basicblock"},
                                None, 2),
    "voxel_mmdet3d_nuscenes": ("centerpoint_voxel", {"scale": "nuscenes", "block_type": "basicblock",
                                                     "bn_momentum": 0.01, "with_attrs": False}, None, 1),
    "pillar_mmdet3d_synthetic": ("centerpoint_pillar", {"scale": "synthetic", "width": 0.25, "pfn": "mmdet3d"}, None, 2),
    "pillar_mmdet3d_nuscenes": ("centerpoint_pillar", {"scale": "nuscenes", "pfn": "mmdet3d", "bn_momentum": 0.01,
                                                       "with_attrs": False}, None, 1),
    "camera_synthetic": ("camera_bev_synthetic", {}, (128, 224), 2),
    "camera_nuscenes": ("camera_bev_nuscenes", {}, (256, 704), 1),
    "fusion_synthetic": ("fusion_centerpoint", {"scale": "synthetic", "width": 0.25}, (128, 224), 2),
    "fusion_nuscenes": ("fusion_centerpoint", {"scale": "nuscenes"}, (256, 704), 1),
    "seg_synthetic": ("sparse_unet_seg", {"scale": "synthetic", "width": 0.5}, None, 2),
    "seg_nuscenes": ("sparse_unet_seg", {"scale": "nuscenes"}, None, 1),
    "toy": (TOY_MODEL, {"channels": 8}, None, 2),
}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _batch(image_size, batch_size):
    """The distillation tests' tiny real batch (two boxes, ground points; a 10-point second
    sample so per-sample row counts differ), with one camera at ``image_size``."""
    b = rm.real_batch(0, batch_size=batch_size, num_cams=1)
    if batch_size > 1:
        b.points[1] = b.points[1][:-10]
        b.samples[1].num_key_points -= 10
    if image_size is not None:
        intr, c2l = ring_rig(1, image_size, hfov_deg=70.0)
        b.images = torch.randn(batch_size, 1, 3, *image_size, generator=torch.Generator().manual_seed(0))
        b.cam_intrinsics = torch.tensor(np.repeat(intr[None], batch_size, 0), dtype=torch.float32)
        b.cam2lidar = torch.tensor(np.repeat(c2l[None], batch_size, 0), dtype=torch.float32)
        b.img_aug = torch.eye(3).repeat(batch_size, 1, 1, 1)
    return b


def _run(name):
    model_name, kwargs, image_size, batch_size = CASES[name]
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=model_name, kwargs=kwargs)).eval()
    batch = _batch(image_size, batch_size)
    with torch.no_grad():
        feats = model(batch).feats
    return model, feats, batch


@pytest.mark.parametrize("name", sorted(CASES))
def test_specs_match_the_forward_output(name):
    model, feats, batch = _run(name)
    specs = model.feature_specs()
    assert all(isinstance(v, FeatureSpec) for v in specs.values())
    check_feature_specs(specs, feats, batch, where=name)
    # the detectors' head input lies on the model's BEV grid
    if getattr(model, "bev_grid", None) is not None and "bev_neck" in specs:
        assert specs["bev_neck"].grid == model.bev_grid


def test_wrong_specs_are_caught():
    model, feats, batch = _run("voxel_synthetic")
    specs = model.feature_specs()
    bev, vox = specs["bev_neck"], specs["voxel"]
    wrong = {
        "channels": {"bev_neck": dataclasses.replace(bev, channels=bev.channels + 1)},
        "kind": {"voxel": FeatureSpec(vox.channels, "bev", vox.stride, grid=vox.grid)},
        "grid": {"bev_neck": dataclasses.replace(bev, grid=bev.grid.scaled(2))},
        "voxel geometry": {"voxel": dataclasses.replace(vox, voxel_size=(0.2, 0.2, 0.2))},
        "point rows": {"bev_neck": dataclasses.replace(bev, kind="point", grid=None)},
    }
    for what, change in wrong.items():
        with pytest.raises(ValueError, match="feature specs disagree"):
            check_feature_specs({**specs, **change}, feats, batch)
    missing = {k: v for k, v in specs.items() if k != "heatmap"}
    with pytest.raises(ValueError, match="heatmap: produced but has no spec"):
        check_feature_specs(missing, feats, batch)
    with pytest.raises(ValueError, match="extra: has a spec but is not produced"):
        check_feature_specs({**specs, "extra": bev}, feats, batch)


def test_seg_point_rows_follow_the_points():
    """Per-point features have one row per input point (all sweeps), split by sample sizes."""
    model, feats, batch = _run("seg_synthetic")
    spec = model.feature_specs()["point_feats"]
    assert spec.kind == "point" and feats["point_feats"].shape[0] == sum(len(p) for p in batch.points)
    with pytest.raises(ValueError, match="kind 'key_point' expects"):
        batch.samples[0].num_key_points -= 5
        check_feature_specs({"point_feats": dataclasses.replace(spec, kind="key_point")},
                            {"point_feats": feats["point_feats"]}, batch)


def test_feature_spec_validates_its_fields():
    with pytest.raises(ValueError, match="FeatureSpec.kind"):
        FeatureSpec(4, "dense")
    with pytest.raises(ValueError, match="'bev' feature needs its grid"):
        FeatureSpec(4, "bev")
    with pytest.raises(ValueError, match="needs point_range and voxel_size"):
        FeatureSpec(4, "voxel", grid=BEVGrid(0, 0, 4, 4, 1, 1))
    spec = FeatureSpec(4, "voxel", 1, point_range=[0, 0, 0, 4, 4, 2], voxel_size=[0.5, 0.5, 0.25])
    assert spec.spatial_shape == (8, 8, 8)
