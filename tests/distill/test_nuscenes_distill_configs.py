"""The nuScenes-scale distillation configs (``configs/nuscenes/distill_*.py``) pair the named
nuScenes teacher and student configs, load the data the teacher needs, type no channel counts
or voxel geometry, and the terms built from the real nuScenes-scale models' feature specs fit
together (adapters, graph convs, projection heads, grids). That the specs equal the real
forward outputs at nuScenes scale is tests/models/test_feature_specs.py's job.
"""
import copy
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
from kd3d.distill.distiller import DistillContext, inherit_head  # noqa: E402
from kd3d.distill.specs import build_terms_for_models  # noqa: E402
from kd3d.distill.methods.bevdistill import InstanceContrastiveLoss  # noqa: E402
from kd3d.distill.methods.distillbev import DistillBEVSpatialLoss  # noqa: E402
from kd3d.distill.methods.pointdistiller import PointDistillerLoss  # noqa: E402
from kd3d.distill.methods.pvd import AffinityDistillLoss  # noqa: E402
from kd3d.distill.methods.unidistill import UNIDISTILL_WEIGHTS, KeypointRelationLoss  # noqa: E402
from kd3d.models.build import build_model  # noqa: E402
from kd3d.engine.config import load_config  # noqa: E402
from kd3d.models.base import ModelOutput  # noqa: E402

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


def _terms(name):
    """(terms, adapters, student specs, teacher specs) of config ``name`` built on the real models."""
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    student, teacher = _model(s_name), _model(t_name)
    terms, adapters = build_terms_for_models(cfg.distill.method, cfg.distill.method_kwargs, student=student,
                                             teacher=teacher)
    return terms, adapters, student.feature_specs(), teacher.feature_specs()


def _loss_channels(loss):
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
def test_terms_take_channels_from_the_model_specs(name):
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    kw = cfg.distill.method_kwargs
    typed = {"student_channels", "teacher_channels", "point_range", "voxel_size"} & set(kw)
    assert not typed, f"{name}: hand-typed {sorted(typed)} in method_kwargs"
    assert all(isinstance(level, str) for level in kw.get("levels", ()))
    terms, adapters, s_specs, t_specs = _terms(name)
    assert terms
    used = set()
    for term in terms:
        if isinstance(term.student_key, tuple):  # head outputs (heatmap, reg): identical head layouts
            assert term.student_key == term.teacher_key == ("heatmap", "reg")
            s_head, t_head = _model(s_name).head, _model(t_name).head
            assert s_head.class_names == t_head.class_names and s_head.tasks == t_head.tasks, term.name
            assert all(s_specs[k].grid.shape == t_specs[k].grid.shape for k in term.student_key), term.name
            continue
        ss, ts = s_specs[term.student_key], t_specs[term.teacher_key]
        assert ss.kind == ts.kind, f"{term.name}: student {ss.kind} vs teacher {ts.kind}"
        need_s, need_t = _loss_channels(term.loss)
        if need_s is not None:
            assert (need_s, need_t) == (ss.channels, ts.channels), term.name
        if term.adapter is not None:
            ad = adapters[term.adapter]
            assert isinstance(ad, ChannelAdapter)
            assert (ad.conv.in_channels, ad.conv.out_channels) == (ss.channels, ts.channels), term.name
            used.add(term.adapter)
        elif not isinstance(term.loss, CHANNEL_FREE):
            assert ss.channels == ts.channels, f"{term.name}: {ss.channels} vs {ts.channels} channels, no adapter"
        if ss.kind == "bev" and cfg.distill.method == "distillbev":
            assert ss.grid.shape == ts.grid.shape, f"{term.name}: student map {ss.grid} vs teacher map {ts.grid}"
        if ss.kind in ("voxel", "pillar"):
            assert ss.spatial_shape == ts.spatial_shape, term.name
    assert used == set(adapters), f"adapters never used: {set(adapters) - used}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_settings(name):
    """The papers' settings the docstrings promise, and geometry that must match the models."""
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    d, kw = cfg.distill, cfg.distill.method_kwargs
    if s_name == CAMERA_STUDENT:
        assert _model(s_name).bev_grid == _model(t_name).bev_grid
        assert d.inherit_head == ("task_heads" if d.method == "distillbev" else False)
    if d.method == "bevdistill":
        assert (kw["dense_weight"], kw["instance_weight"], kw["temperature"]) == (0.01, 0.2, 0.07)
        assert (kw["feature_key"], kw["instance_key"]) == ("head_shared", "bev_neck")
        assert kw["distill_velocity"] is False
    elif d.method == "distillbev":
        assert list(kw["levels"]) == ["bev_stage1", "bev_stage2", "bev_neck"]
        assert (kw["a_fg"], kw["a_bg"], kw["a_fp"], kw["a_sp"]) == (6e-3, 4e-2, 6e-2, 2.5e-3)
        # the per-task heads are inheritable at nuScenes scale: 6 tasks x 7 branches (heatmap, 5 box
        # groups, attributes) x 8 tensors (conv, 5 BN entries, final conv weight + bias)
        names = inherit_head(copy.deepcopy(_model(s_name)), _model(t_name), mode="task_heads")
        assert len(names) == 6 * 7 * 8
    elif d.method == "unidistill":
        pair = (kw["teacher_modality"], kw["student_modality"])
        assert tuple(kw["weights"]) == UNIDISTILL_WEIGHTS[pair]
        assert pair[0] == ("fusion" if "fusion" in t_name else "lidar") and pair[1] == "camera"
        assert kw["distill_velocity"] is False
    elif d.method == "pointdistiller":  # the authors' settings (docs/methods.md)
        from kd3d.distill.specs import build_terms_for_models

        terms, _ = build_terms_for_models(d.method, kw, student=_model(s_name), teacher=_model(t_name))
        losses = [t.loss for t in terms]
        if "pillar" in t_name:  # pillar features before the scatter, kept points per pillar
            assert kw["preset"] == "pointpillars" and [t.teacher_key for t in terms] == ["voxel"]
            assert (losses[0].num_items, losses[0].k, losses[0].tau, losses[0].importance) == (6000, 128, 1e-2, "points")
        else:  # two 2D BEV-backbone stages, channel-max importance, equal weights
            assert kw["preset"] == "second" and [t.teacher_key for t in terms] == ["bev_stage1", "bev_stage2"]
            assert all((x.num_items, x.k, x.tau, x.importance) == (256, 128, None, "feature_max") for x in losses)
    elif d.method == "pvd":  # voxel centres from the teacher's voxel grid (its feature specs)
        seg = _model(t_name)
        assert list(seg.voxel_size) == list(_model(s_name).voxel_size)
        (loss,) = [t.loss for t in _terms(name)[0] if t.name == "pvd/voxel_affinity"]
        assert list(loss.voxel_size) == list(seg.voxel_size) and list(loss.point_range) == list(seg.point_range)
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
    if cfg.distill.inherit_head == "task_heads":  # DistillBEV: the per-task heads start as the teacher's
        t_state = teacher.state_dict()
        inherited = [k for k in student.state_dict() if k.startswith("head.task_heads.")]
        assert len(inherited) == 6 * 7 * 8
        assert all(torch.equal(student.state_dict()[k], t_state[k]) for k in inherited)
    assert not any(p.requires_grad for p in teacher.parameters())
    assert len(dist.terms) == len(_terms(name)[0])


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


def test_pointdistiller_runs_on_real_pillars():
    """The term on the real nuScenes-scale pillar features (before the scatter), importance
    from the teacher's kept points per pillar."""
    name = "nuscenes/distill_pointdistiller_pillar_w050"
    cfg = _cfg(name)
    t_name, s_name = CASES[name]
    (term,), _, _, _ = _terms(name)
    with torch.no_grad():
        t_raw = _model(t_name).encoder(_batch().points)
        s = _model(s_name).encoder(_batch().points)["voxel"]
    t = t_raw["voxel"]
    ctx = DistillContext(batch=_batch(), student_out=ModelOutput(feats={}, preds={}),
                         teacher_out=ModelOutput(feats={"voxel_num_points": t_raw["voxel_num_points"]}, preds={}))
    term.loss.eval()
    with torch.no_grad():
        value = term.loss(s, t, ctx)
    assert math.isfinite(float(value)) and float(value) > 0
