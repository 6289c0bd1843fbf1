"""The nuScenes-scale distillation configs (``configs/nuscenes/distill_*.py``) pair the named
nuScenes teacher and student configs, load the data the teacher needs, and every channel count
in their ``method_kwargs`` equals what the real nuScenes-scale models produce.

Channels are read from real tensors of the nuScenes-scale models without a full forward (a
full one would cost minutes on one CPU thread): the LiDAR encoders run on a few hundred points
(sparse voxels / scattered pillars at the full grid), the camera view transformer on one
camera's stride-16 feature map (the ResNet-50 + FPN are skipped: their output width is the
view transformer's input), the 2D BEV backbones and necks on a 16 x 16 centre crop of the BEV
map (channel counts do not depend on the map size); the segmenters run whole.
"""
import dataclasses
import functools
import math
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import real_models as rm  # noqa: E402

from kd3d.distill import DistillConfig  # noqa: E402
from kd3d.distill.adapters import ChannelAdapter  # noqa: E402
from kd3d.distill.build import build_distiller  # noqa: E402
from kd3d.distill.distiller import DistillContext  # noqa: E402
from kd3d.distill.methods import build_terms  # noqa: E402
from kd3d.distill.methods.bevdistill import InstanceContrastiveLoss  # noqa: E402
from kd3d.distill.methods.distillbev import DistillBEVSpatialLoss  # noqa: E402
from kd3d.distill.methods.pointdistiller import PointDistillerLoss  # noqa: E402
from kd3d.distill.methods.pvd import AffinityDistillLoss  # noqa: E402
from kd3d.distill.methods.unidistill import UNIDISTILL_WEIGHTS, KeypointRelationLoss  # noqa: E402
from kd3d.models.build import build_model  # noqa: E402
from kd3d.engine.config import load_config  # noqa: E402
from kd3d.models.base import ModelOutput  # noqa: E402
from kd3d.ops.spconv import is_sparse_tensor  # noqa: E402

# config -> (teacher config, student config)
CASES = {
    "nuscenes/distill_bevdistill": ("nuscenes/centerpoint_voxel01", "nuscenes/lss_r50_256x704"),
    "nuscenes/distill_distillbev": ("nuscenes/centerpoint_voxel01", "nuscenes/lss_r50_256x704"),
    "nuscenes/distill_unidistill": ("nuscenes/centerpoint_voxel01", "nuscenes/lss_r50_256x704"),
    "nuscenes/distill_unidistill_fusion": ("nuscenes/fusion_voxel01", "nuscenes/lss_r50_256x704"),
    "nuscenes/distill_pointdistiller_voxel_w050": ("nuscenes/centerpoint_voxel01", "nuscenes/centerpoint_voxel01_w050"),
    "nuscenes/distill_pointdistiller_voxel_w025": ("nuscenes/centerpoint_voxel01", "nuscenes/centerpoint_voxel01_w025"),
    "nuscenes/distill_pointdistiller_pillar_w050": ("nuscenes/centerpoint_pillar02", "nuscenes/pillar02_w050"),
    "nuscenes/distill_pvd": ("nuscenes/seg_unet", "nuscenes/seg_unet_w050"),
}
CAMERA_STUDENT = "nuscenes/lss_r50_256x704"
CROP = 16

# losses whose two inputs may have different channel counts (own projections, or similarity
# matrices); every other term compares student (adapted) and teacher channel for channel
CHANNEL_FREE = (KeypointRelationLoss, AffinityDistillLoss, InstanceContrastiveLoss, PointDistillerLoss)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.lru_cache(maxsize=None)
def _cfg(name):
    return load_config(name)


@functools.lru_cache(maxsize=None)
def _model(name):
    torch.manual_seed(0)
    return build_model(_cfg(name).model).eval()


def _batch():
    """The tiny real batch (points within +-8 m, two boxes) with one 256 x 704 camera."""
    from kd3d.models.camera.rig import ring_rig

    b = rm.real_batch(0, batch_size=1, num_cams=1)
    intr, c2l = ring_rig(1, (256, 704), hfov_deg=70.0)
    b.images = None
    b.cam_intrinsics = torch.tensor(intr[None], dtype=torch.float32)
    b.cam2lidar = torch.tensor(c2l[None], dtype=torch.float32)
    b.img_aug = torch.eye(3).repeat(1, 1, 1, 1)
    b.points_label = [torch.as_tensor(np.full(len(b.points[0]), 11), dtype=torch.int64)]
    return b


def _centre_crop(x):
    h, w = x.shape[-2:]
    return x[..., h // 2 - CROP // 2:h // 2 + CROP // 2, w // 2 - CROP // 2:w // 2 + CROP // 2]


def _info(value, full_hw=None, crop_hw=None):
    """(channels, full-scale (H, W) or None) of a feature tensor; maps computed on a crop are
    scaled back to the full map by the crop ratio."""
    if is_sparse_tensor(value):
        return int(value.features.shape[1]), None
    if value.ndim == 2:
        return int(value.shape[1]), None
    hw = tuple(value.shape[-2:])
    if full_hw is not None:
        hw = tuple(f * s // c for f, s, c in zip(full_hw, hw, crop_hw))
    return int(value.shape[1]), hw


@functools.lru_cache(maxsize=None)
def _features(name):
    """{feature key: (channels, full-scale (H, W) or None)} and the raw sparse/dense encoder
    outputs of model config ``name`` (see the module docstring for what runs)."""
    m, batch = _model(name), _batch()
    kind = type(m).__name__
    with torch.no_grad():
        if kind == "LidarSegmenter":
            feats = m(batch).feats
            return {k: _info(v) for k, v in feats.items() if torch.is_tensor(v) or is_sparse_tensor(v)}, feats
        if kind == "LidarCenterPoint":
            raw = dict(m.encoder(batch.points))
            bev = raw["bev"]
        elif kind == "FusionCenterPoint":
            raw = dict(m.lidar_encoder(batch.points))
            h, w = raw["bev"].shape[-2:]
            cam = torch.randn(1, m.camera.out_channels, h, w)
            bev = m.fuser(raw["bev"], cam)
            raw["bev"] = bev
        elif kind == "CameraBEVDet":
            vt = m.camera.view_transformer
            _, fh, fw, _ = vt.frustum.shape
            fpn = torch.randn(1, m.camera.neck.out_channels, fh, fw)
            bev, _ = vt(fpn, batch)
            raw = {"bev": bev}
        else:
            raise AssertionError(f"unexpected model type {kind}")
        full, x = tuple(bev.shape[-2:]), _centre_crop(bev)
        out = {k: _info(v) for k, v in raw.items()}
        if kind == "CameraBEVDet":
            maps = m.bev_encoder(x)
        else:
            stages = m.backbone(x)
            maps = {f"bev_stage{k}": s for k, s in enumerate(stages, start=1)}
            maps["bev_neck"] = m.neck(stages)
        for k, v in maps.items():
            out[k] = _info(v, full, x.shape[-2:])
    return out, raw


def _channel_needs(loss):
    """(student channels, teacher channels) a term's loss module is built for, None where free."""
    if isinstance(loss, InstanceContrastiveLoss):
        return loss.student_proj[0].in_features, loss.teacher_proj[0].in_features
    if isinstance(loss, PointDistillerLoss):
        return loss.student_edge.net[0].in_channels // 2, loss.teacher_edge.net[0].in_channels // 2
    if isinstance(loss, (KeypointRelationLoss, AffinityDistillLoss, DistillBEVSpatialLoss)):
        return None, None  # similarity matrices / a 1 -> 1 conv on the channel mean
    params = list(loss.parameters()) if isinstance(loss, torch.nn.Module) else []
    assert not params, f"{type(loss).__name__} has parameters this test does not know: add its channels here"
    return None, None


@pytest.mark.parametrize("name", sorted(CASES))
def test_config_pairs_the_named_nuscenes_models(name):
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    teacher, student = _cfg(t_name), _cfg(s_name)
    d = cfg.distill
    assert isinstance(d, DistillConfig)
    assert (d.teacher_model, d.teacher_kwargs) == (teacher.model.name, teacher.model.kwargs)
    assert cfg.model == student.model
    assert d.teacher_checkpoint == f"work_dirs/{teacher.name}"
    assert not d.allow_untrained_teacher
    assert cfg.name not in (teacher.name, student.name)
    # same dataset and training recipe as the student ...
    for f in ("dataset", "root", "version", "train_split", "val_split", "train_kwargs", "val_kwargs", "batch_size"):
        assert getattr(cfg.data, f) == getattr(student.data, f), f
    assert cfg.optim == student.optim and cfg.eval == student.eval
    # ... plus whatever the teacher reads (sweeps, images, lidarseg labels)
    kw = cfg.data.kwargs
    assert kw["sweeps"] == max(teacher.data.kwargs["sweeps"], student.data.kwargs["sweeps"])
    for flag in ("load_images", "load_lidarseg"):
        assert kw[flag] == (teacher.data.kwargs[flag] or student.data.kwargs[flag]), flag


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_kwargs_channels_match_the_real_models(name):
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    s_feats, _ = _features(s_name)
    t_feats, _ = _features(t_name)
    terms, adapters = build_terms(cfg.distill.method, **cfg.distill.method_kwargs)
    assert terms
    used = set()
    for term in terms:
        if isinstance(term.student_key, tuple):  # head outputs (heatmap, reg): identical head layouts
            assert term.student_key == term.teacher_key == ("heatmap", "reg")
            s_head, t_head = _model(s_name).head, _model(t_name).head
            assert s_head.class_names == t_head.class_names and s_head.tasks == t_head.tasks, term.name
            assert s_head.grid.shape == t_head.grid.shape, term.name
            continue
        (cs, s_hw), (ct, t_hw) = s_feats[term.student_key], t_feats[term.teacher_key]
        need_s, need_t = _channel_needs(term.loss)
        if need_s is not None:
            assert (need_s, need_t) == (cs, ct), \
                f"{term.name}: loss built for {need_s}->{need_t}, models give {cs}->{ct}"
        if term.adapter is not None:
            ad = adapters[term.adapter]
            assert isinstance(ad, ChannelAdapter)
            assert (ad.conv.in_channels, ad.conv.out_channels) == (cs, ct), \
                f"{term.name}: adapter {ad.conv.in_channels}->{ad.conv.out_channels}, models give {cs}->{ct}"
            used.add(term.adapter)
        elif not isinstance(term.loss, CHANNEL_FREE):
            assert cs == ct, f"{term.name}: compares {cs} student with {ct} teacher channels without an adapter"
        if s_hw is not None and t_hw is not None and cfg.distill.method == "distillbev":
            assert s_hw == t_hw, f"{term.name}: student map {s_hw} vs teacher map {t_hw}"
    assert used == set(adapters), f"adapters never used: {set(adapters) - used}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_settings(name):
    """The papers' settings the docstrings promise, and geometry that must match the models."""
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    d, kw = cfg.distill, cfg.distill.method_kwargs
    if s_name == CAMERA_STUDENT:
        assert _model(s_name).bev_grid == _model(t_name).bev_grid
        assert not d.inherit_head
    if d.method == "bevdistill":
        assert (kw["dense_weight"], kw["instance_weight"], kw["temperature"]) == (0.01, 0.2, 0.07)
        assert kw["feature_key"] == "bev_neck" and kw["distill_velocity"] is False
    elif d.method == "distillbev":
        assert list(kw["levels"]) == ["bev_stage1", "bev_stage2", "bev_neck"]
        assert (kw["a_fg"], kw["a_bg"], kw["a_fp"], kw["a_sp"]) == (6e-3, 4e-2, 6e-2, 2.5e-3)
    elif d.method == "unidistill":
        pair = (kw["teacher_modality"], kw["student_modality"])
        assert tuple(kw["weights"]) == UNIDISTILL_WEIGHTS[pair]
        assert pair[0] == ("fusion" if "fusion" in t_name else "lidar") and pair[1] == "camera"
        assert kw["distill_velocity"] is False
    elif d.method == "pointdistiller":
        terms, _ = build_terms(d.method, **kw)
        (loss,) = [t.loss for t in terms]
        encoder = _model(t_name).encoder
        if kw["feature_key"] == "voxel":
            assert kw["preset"] == "second" and (loss.num_items, loss.tau) == (256, 1e-4)
            assert loss.importance == "points" and list(loss.point_range) == list(encoder.voxelizer.point_range)
        else:
            assert kw["preset"] == "pointpillars" and (loss.num_items, loss.k, loss.tau) == (6000, 128, 1e-2)
    elif d.method == "pvd":
        seg = _model(t_name)
        assert list(kw["voxel_size"]) == list(seg.voxel_size) == list(_model(s_name).voxel_size)
        assert list(kw["point_range"]) == list(seg.point_range)
    else:
        raise AssertionError(f"no settings check for method {d.method!r}")


def _untrained(cfg):
    return dataclasses.replace(cfg.distill, teacher_checkpoint="", allow_untrained_teacher=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_build_distiller(name):
    cfg = _cfg(name)
    torch.manual_seed(0)
    student = build_model(cfg.model)
    teacher = build_model(_cfg(CASES[name][0]).model)
    dist = build_distiller(_untrained(cfg), student=student, teacher=teacher)
    assert dist.student is student and dist.teacher is teacher
    assert not any(p.requires_grad for p in teacher.parameters())
    assert len(dist.terms) == len(build_terms(cfg.distill.method, **cfg.distill.method_kwargs)[0])


def test_pvd_runs_at_nuscenes_scale():
    """The segmenters are cheap on a few hundred points: one full no-grad Distiller step."""
    cfg = _cfg("nuscenes/distill_pvd")
    torch.manual_seed(0)
    dist = build_distiller(_untrained(cfg), student=build_model(cfg.model),
                           teacher=build_model(_cfg("nuscenes/seg_unet").model)).eval()
    with torch.no_grad():
        losses = dist(_batch())
    terms = sorted(k for k in losses if k.startswith("distill/"))
    assert terms == sorted(f"distill/{t.name}" for t in dist.terms) and len(terms) == 4
    assert all(math.isfinite(float(losses[k])) for k in terms)


@pytest.mark.parametrize("name", ["nuscenes/distill_pointdistiller_voxel_w050",
                                  "nuscenes/distill_pointdistiller_voxel_w025"])
def test_pointdistiller_runs_on_real_sparse_voxels(name):
    """The term on the real nuScenes-scale ``voxel`` tensors (stride-8 stage, point-count importance)."""
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    terms, _ = build_terms(cfg.distill.method, **cfg.distill.method_kwargs)
    (term,) = terms
    s, t = _features(s_name)[1]["voxel"], _features(t_name)[1]["voxel"]
    ctx = DistillContext(batch=_batch(), student_out=ModelOutput(feats={}, preds={}),
                         teacher_out=ModelOutput(feats={}, preds={}))
    term.loss.eval()
    with torch.no_grad():
        value = term.loss(s, t, ctx)
    assert math.isfinite(float(value)) and float(value) > 0
