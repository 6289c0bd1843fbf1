"""The METHODS table: every registered method builds on kd3d's real models (toy size), trains one
step and draws finite maps of its grid's size; an out-of-tree method registers from this file
alone and runs in a Distiller."""
import math
import os
import sys

import numpy as np
import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import real_models as rm  # noqa: E402
from test_real_models import CASES, _build  # noqa: E402

from kd3d.distill import DistillConfig, DistillTerm, build_distiller  # noqa: E402
from kd3d.distill.methods import (METHODS, MapContext, MethodDescriptor, MethodMaps, build_terms,  # noqa: E402
                                  register, unregister)
from kd3d.vis.distill_masks import distiller_maps, render_distiller  # noqa: E402

# one real-model case per method (test_real_models.CASES), plus the generic terms
GENERIC = (rm.lidar_voxel, rm.camera, "generic",
           dict(terms=[{"name": "fitnet", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
                        "student_channels": 16, "teacher_channels": 128},
                       {"name": "cwd", "loss": "cwd", "student_key": "heatmap", "teacher_key": "heatmap", "tau": 4.0}]))
CASE_OF = {"generic": GENERIC}
for _case in CASES.values():
    CASE_OF.setdefault(_case[2], _case)


def _case(name):
    if name not in CASE_OF:
        pytest.fail(f"method {name!r} is registered but has no real-model case: add one to "
                    "tests/distill/test_real_models.py CASES")
    return CASE_OF[name]


def _distiller(name):
    key = next((k for k, c in CASES.items() if c is CASE_OF[name]), None)
    if key is not None:
        return _build(key)
    tf, sf, method, kw = CASE_OF[name]
    from kd3d.distill import Distiller

    teacher, student = tf(), sf(seed=1)
    terms, adapters = build_terms(method, **kw)
    return Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_builtin_methods_registered():
    assert {"bevdistill", "distillbev", "unidistill", "pointdistiller", "pvd", "generic"} <= set(METHODS)
    for name, desc in METHODS.items():
        assert isinstance(desc, MethodDescriptor) and desc.name == name and desc.description
    with pytest.raises(KeyError, match="unknown distillation method 'nope'; known: .*bevdistill"):
        build_terms("nope")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_builds_trains_and_draws(name):
    _case(name)
    d = _distiller(name)
    assert d.terms and all(t.method == name for t in d.terms)
    opt = torch.optim.SGD(d.trainable_parameters(), lr=1e-3)
    d.train()
    losses = d(rm.real_batch(0))
    assert any(k.startswith("distill/") for k in losses)
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    opt.zero_grad()
    sum(losses.values()).backward()
    opt.step()
    if METHODS[name].maps is None:
        return
    kw = distiller_maps(d, rm.real_batch(1), batch_index=1)
    assert kw["masks"], f"{name}: the hook drew no map"
    mine = [k for k in kw["masks"] if k.startswith(name + "/")]
    assert mine, sorted(kw["masks"])
    for key in mine:
        m = np.asarray(kw["masks"][key], dtype=np.float64)
        assert m.shape == kw["grid"].shape and np.isfinite(m).all(), key
    img = render_distiller(d, rm.real_batch(1), tile=64)
    assert img.ndim == 3 and img.std() > 5


# ----------------------------------------------------------------------------- an out-of-tree method
class _L1(torch.nn.Module):
    def forward(self, student, teacher, ctx):
        return (student - teacher.detach()).abs().mean()


def _toy_terms(*, key="heatmap", weight=0.5):
    return [DistillTerm("toy_l1/" + key, key, key, _L1(), None, weight)], {}


def _toy_maps(ctx: MapContext) -> MethodMaps:
    t = torch.as_tensor(ctx.teacher_feat)
    return MethodMaps({"toy_l1/teacher max": t.amax(0)})


def test_register_out_of_tree_method_and_run_a_step():
    desc = register(MethodDescriptor("toy_l1", _toy_terms, "L1 between heatmaps", _toy_maps))
    try:
        assert METHODS["toy_l1"] is desc
        with pytest.raises(ValueError, match="already registered"):
            register(MethodDescriptor("toy_l1", _toy_terms))
        teacher, student = rm.lidar_voxel(), rm.lidar_voxel(width=0.125, seed=1)
        d = build_distiller(DistillConfig(method="toy_l1", method_kwargs={"weight": 2.0}, allow_untrained_teacher=True,
                                          teacher_model="centerpoint_voxel"), student=student, teacher=teacher)
        assert [t.method for t in d.terms] == ["toy_l1"]
        opt = torch.optim.SGD(d.trainable_parameters(), lr=1e-3)
        losses = d.train()(rm.real_batch(0))
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        d.eval()
        with torch.no_grad():
            losses = d(rm.real_batch(0))
            s, t = student(rm.real_batch(0)).feats["heatmap"], teacher(rm.real_batch(0)).feats["heatmap"]
        assert losses["distill/toy_l1/heatmap"].item() == pytest.approx(2.0 * (s - t).abs().mean().item(), rel=1e-5)
        kw = distiller_maps(d, rm.real_batch(0))
        np.testing.assert_allclose(kw["masks"]["toy_l1/teacher max"], t[0].amax(0).numpy(), rtol=1e-5)
    finally:
        unregister("toy_l1")
    assert "toy_l1" not in METHODS
