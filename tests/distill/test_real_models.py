"""Every method on kd3d's real models (toy size): LiDAR voxel/pillar CenterPoint, camera LSS
student, fusion teacher, sparse-UNet segmenter. Checks: finite terms, the teacher is untouched
(weights and BatchNorm statistics) while the student and adapters train, and golden values of
every term on a fixed batch with fixed seeds (tests/distill/golden_real_terms.json; regenerate
with ``python3 tests/distill/test_real_models.py`` after an intended model change)."""
import json
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))
import real_models as rm  # noqa: E402

from kd3d.distill import Distiller  # noqa: E402
from kd3d.distill.specs import build_terms_for_models  # noqa: E402

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_real_terms.json")


def _cases():
    """name -> (teacher factory, student factory, method, method kwargs)."""
    cases = {
        "bevdistill_lidar_camera": (rm.lidar_voxel, rm.camera, "bevdistill",
                                    dict(proj_dim=8, hidden=16)),
        "distillbev_lidar_camera": (rm.lidar_voxel, rm.camera, "distillbev",
                                    dict(levels=["bev_stage1", "bev_stage2", "bev_neck"])),
        "pointdistiller_second_050": (rm.lidar_voxel, lambda: rm.lidar_voxel(width=0.125, seed=1), "pointdistiller",
                                      dict(preset="second", feature_key=["bev_stage1", "bev_stage2"], num_items=16, k=4)),
        "pointdistiller_pillars_025": (rm.lidar_pillar, lambda: rm.lidar_pillar(width=0.0625, seed=1),
                                       "pointdistiller",
                                       dict(feature_key="voxel",
                                            preset="pointpillars", num_items=128, k=8)),
        "pvd_seg_050": (rm.segmenter, lambda: rm.segmenter(width=0.125, seed=1), "pvd",
                        dict(num_supervoxels=4, points_per_supervoxel=16, supervoxel_mode="cylinder")),
    }
    bev = {"lidar": rm.lidar_voxel, "camera": rm.camera, "fusion": rm.fusion}
    for t_mod, s_mod in (("lidar", "camera"), ("fusion", "camera"), ("camera", "lidar"), ("fusion", "lidar")):
        tf, sf = bev[t_mod], bev[s_mod]
        student = (lambda f=sf: f(seed=1)) if s_mod != "lidar" else (lambda: rm.lidar_voxel(width=0.125, seed=1))
        cases[f"unidistill_{t_mod}_{s_mod}"] = (tf, student, "unidistill",
                                                 dict(teacher_modality=t_mod, student_modality=s_mod))
    return cases


CASES = _cases()


def _calibrate_bn(model):
    """Set BatchNorm running statistics from one batch (an untrained model's eval-mode features
    are otherwise ~1e-7 and every golden value would be ~0)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None
    model.train()
    with torch.no_grad():
        model(rm.real_batch(7))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.1
    return model


def _build(name):
    tf, sf, method, kw = CASES[name]
    teacher, student = _calibrate_bn(tf()), _calibrate_bn(sf())
    torch.manual_seed(123)
    terms, adapters = build_terms_for_models(method, kw, student=student, teacher=teacher)
    return Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters)


def _eval_terms(name) -> dict[str, float]:
    d = _build(name).eval()
    with torch.no_grad():
        losses = d(rm.real_batch(0))
    return {k: float(v) for k, v in losses.items() if k.startswith("distill/")}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_terms(name):
    with open(GOLDEN) as f:
        golden = json.load(f)
    got = _eval_terms(name)
    assert set(got) == set(golden[name])
    for k, v in got.items():
        assert math.isfinite(v)
        assert v == pytest.approx(golden[name][k], rel=1e-3, abs=1e-9), k


@pytest.mark.parametrize("name", ["distillbev_lidar_camera", "pointdistiller_second_050", "pvd_seg_050",
                                  "unidistill_fusion_lidar"])
def test_training_moves_student_not_teacher(name):
    d = _build(name)
    t_state = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    s_state = {k: v.clone() for k, v in d.student.state_dict().items()}
    extra = [p.detach().clone() for p in list(d.adapters.parameters()) + list(d.term_losses.parameters())]
    opt = torch.optim.AdamW(d.trainable_parameters(), lr=1e-2)
    d.train()
    for seed in (0, 1):
        losses = d(rm.real_batch(seed))
        opt.zero_grad()
        sum(losses.values()).backward()
        assert all(p.grad is None for p in d.teacher.parameters())
        opt.step()
    assert all(torch.equal(v, t_state[k]) for k, v in d.teacher.state_dict().items())
    assert any(not torch.equal(v, s_state[k]) for k, v in d.student.state_dict().items())
    now = [p.detach() for p in list(d.adapters.parameters()) + list(d.term_losses.parameters())]
    assert not extra or any(not torch.equal(a, b) for a, b in zip(extra, now))


if __name__ == "__main__":  # regenerate the golden file
    torch.set_num_threads(1)
    table = {name: _eval_terms(name) for name in sorted(CASES)}
    with open(GOLDEN, "w") as f:
        json.dump(table, f, indent=1, sort_keys=True)
    print(json.dumps(table, indent=1))
