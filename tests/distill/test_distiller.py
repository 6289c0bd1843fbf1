"""Distiller framework: frozen teacher, trainable student/adapters, loss dict, checkpoints, taps."""
import pytest
import torch
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller, DistillTerm, inherit_head, load_checkpoint_into
from kd3d.distill.adapters import ChannelAdapter
from kd3d.distill.losses import CWDLoss, MSELoss
from kd3d.distill.taps import FeatureTaps, TappedModel
from kd3d.models.base import ModelOutput
from kd3d.structures import BEVGrid

GRID = BEVGrid(-8, -8, 8, 8, 0.5, 0.5)


def _distiller(dropout=0.5):
    torch.manual_seed(0)
    teacher = TinyBEVDetector(grid=GRID, width=8, dropout=dropout)
    student = TinyBEVDetector(grid=GRID, width=4)
    terms = [DistillTerm("fitnet", "bev_neck", "bev_neck", MSELoss(), "neck", 2.0),
             DistillTerm("cwd", "heatmap", "heatmap", CWDLoss(tau=2.0), None, 0.5)]
    return Distiller(student=student, teacher=teacher, terms=terms, adapters={"neck": ChannelAdapter(8, 16)})


def test_loss_dict_keys_and_weights():
    d = _distiller()
    batch = make_batch(0)
    losses, s, t = d.forward_with_outputs(batch)
    assert set(losses) == {"student/heatmap", "student/reg", "distill/fitnet", "distill/cwd"}
    assert {k: v.item() for k, v in d(batch).items()} == pytest.approx({k: v.item() for k, v in losses.items()})
    expected = 2.0 * torch.mean((d.adapters["neck"](s.feats["bev_neck"]) - t.feats["bev_neck"]) ** 2)
    assert losses["distill/fitnet"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert Distiller.total_loss(losses).item() == pytest.approx(sum(v.item() for v in losses.values()), rel=1e-6)


def test_distiller_keeps_no_outputs_of_a_step():
    """After forward + backward + optimiser step, the step's features are garbage: the Distiller
    holds no reference to the student or teacher output (it used to keep the last two steps')."""
    import gc
    import weakref

    d = _distiller()
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1)
    refs = []

    def watch(module, inputs, out):
        refs.extend([weakref.ref(out), *(weakref.ref(v) for v in out.feats.values())])

    d.student.register_forward_hook(watch)
    d.teacher.register_forward_hook(watch)
    for step in range(2):
        losses = d(make_batch(step))
        opt.zero_grad()
        Distiller.total_loss(losses).backward()
        opt.step()
        del losses
        gc.collect()
        assert len(refs) > 2 * (step + 1)  # both outputs and their features were watched
        assert all(r() is None for r in refs), "a step's output is still referenced after the step"
    assert not any(isinstance(v, ModelOutput) for v in vars(d).values())


def test_teacher_frozen_no_grad_no_change_bn_and_dropout_eval():
    d = _distiller(dropout=0.5)
    d.train()
    assert d.student.training and not d.teacher.training
    assert all(not m.training for m in d.teacher.modules())
    t_before = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    s_before = {k: v.clone() for k, v in d.student.state_dict().items()}
    a_before = d.adapters["neck"].conv.weight.clone()
    opt = torch.optim.SGD(d.trainable_parameters(), lr=0.1)
    assert all(p.requires_grad for p in d.trainable_parameters())
    assert not any(p.requires_grad for p in d.teacher.parameters())
    for step in range(3):
        batch = make_batch(step)
        losses = d(batch)
        opt.zero_grad()
        Distiller.total_loss(losses).backward()
        assert all(p.grad is None for p in d.teacher.parameters())
        opt.step()
    for k, v in d.teacher.state_dict().items():  # weights and BatchNorm running stats
        assert torch.equal(v, t_before[k]), k
    assert not torch.equal(d.adapters["neck"].conv.weight, a_before)
    assert any(not torch.equal(v, s_before[k]) for k, v in d.student.state_dict().items() if "running_mean" in k)
    # teacher deterministic in train mode (dropout off)
    batch = make_batch(5)
    a = d.teacher_forward(batch).feats["bev_neck"]
    b = d.teacher_forward(batch).feats["bev_neck"]
    assert torch.equal(a, b) and not a.requires_grad


def test_student_state_dict_loads_into_bare_student(tmp_path):
    d = _distiller()
    d(make_batch(0))
    state = d.student_state_dict()
    assert not any(k.startswith(("teacher", "adapters")) for k in state)
    torch.save(state, tmp_path / "student.pth")
    bare = TinyBEVDetector(grid=GRID, width=4)
    load_checkpoint_into(bare, tmp_path / "student.pth")
    batch = make_batch(1)
    d.eval(), bare.eval()
    assert torch.equal(bare(batch).feats["heatmap"], d.student(batch).feats["heatmap"])


def test_load_teacher_checkpoint_and_mismatch_error(tmp_path):
    d = _distiller()
    src = TinyBEVDetector(grid=GRID, width=8)
    torch.save({"model": src.state_dict(), "epoch": 3}, tmp_path / "teacher.pth")
    d.load_teacher(tmp_path / "teacher.pth")
    assert torch.equal(d.teacher.head["reg"].weight, src.head["reg"].weight)
    assert not d.teacher.head["reg"].weight.requires_grad
    bad = src.state_dict()
    bad["extra.weight"] = torch.zeros(1)
    del bad["head.reg.bias"]
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match=r"missing keys: head\.reg\.bias \(1 in all\); unexpected keys: extra\.weight"):
        d.load_teacher(tmp_path / "bad.pth")


def test_errors_name_the_problem():
    teacher = TinyBEVDetector(grid=GRID)
    with pytest.raises(KeyError, match="adapter 'nope'"):
        Distiller(student=TinyBEVDetector(grid=GRID), teacher=teacher,
                  terms=[DistillTerm("x", "bev", "bev", MSELoss(), "nope")])
    d = Distiller(student=TinyBEVDetector(grid=GRID), teacher=teacher,
                  terms=[DistillTerm("x", "bev_missing", "bev", MSELoss())])
    with pytest.raises(KeyError, match="student output has no feature 'bev_missing'"):
        d(make_batch(0))


def test_inherit_head_copies_matching_tensors():
    torch.manual_seed(1)
    t, s = TinyBEVDetector(grid=GRID, width=4), TinyBEVDetector(grid=GRID, width=4)
    names = inherit_head(s, t)
    assert "head.heatmap.weight" in names and torch.equal(s.head["reg"].bias, t.head["reg"].bias)
    with pytest.raises(ValueError, match="no tensor"):
        inherit_head(s, t, prefix="nohead")


def test_taps_record_submodule_outputs():
    model = TinyBEVDetector(grid=GRID, width=4)
    batch = make_batch(0)
    with FeatureTaps(model, {"s2": "stage2", "n": "neck.0"}) as taps:
        out = model(batch)
        assert torch.equal(taps.features["s2"], out.feats["bev_stage2"])
        assert taps.features["n"].shape[1] == 8
    assert not model.stage2._forward_hooks
    tapped = TappedModel(model, {"stage2_copy": "stage2"})
    assert torch.equal(tapped(batch).feats["stage2_copy"], out.feats["bev_stage2"])
    with pytest.raises(KeyError, match="no submodule"):
        FeatureTaps(model, {"x": "does.not.exist"})


def test_load_checkpoint_from_work_dir_prefers_student(tmp_path):
    src = TinyBEVDetector(grid=GRID, width=4)
    other = TinyBEVDetector(grid=GRID, width=8)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"model": other.state_dict(), "student": src.state_dict()}, tmp_path / "checkpoints" / "ckpt_step00000002.pth")
    torch.save({"model": other.state_dict()}, tmp_path / "checkpoints" / "ckpt_step00000001.pth")
    bare = TinyBEVDetector(grid=GRID, width=4)
    load_checkpoint_into(bare, tmp_path)  # the latest step, its student entry
    assert torch.equal(bare.head["reg"].weight, src.head["reg"].weight)
    with pytest.raises(ValueError, match="shape mismatches"):
        load_checkpoint_into(bare, tmp_path / "checkpoints" / "ckpt_step00000001.pth")
    with pytest.raises(FileNotFoundError):
        load_checkpoint_into(bare, tmp_path / "nope.pth")


def test_generic_terms_from_config():
    from kd3d.distill.methods import build_terms

    terms, adapters = build_terms("generic", terms=[
        {"name": "fit", "loss": "mse", "student_key": "bev_neck", "teacher_key": "bev_neck",
         "student_channels": 8, "teacher_channels": 16},
        {"name": "kl", "loss": "kl", "student_key": "heatmap", "teacher_key": "heatmap", "temperature": 2.0,
         "weight": 0.5}])
    assert [t.name for t in terms] == ["fit", "kl"] and terms[1].loss.temperature == 2.0
    assert set(adapters) == {"generic_fit"}
    with pytest.raises(ValueError, match="loss must be one of"):
        build_terms("generic", terms=[{"name": "x", "loss": "l3", "student_key": "a", "teacher_key": "a"}])
    with pytest.raises(KeyError, match="unknown distillation method"):
        build_terms("nope")


def _terms():
    return [DistillTerm("fitnet", "bev_neck", "bev_neck", MSELoss(), "neck", 2.0),
            DistillTerm("cwd", "heatmap", "heatmap", CWDLoss(tau=2.0), None, 0.5)]


def _pair():
    torch.manual_seed(0)
    return TinyBEVDetector(grid=GRID, width=8), TinyBEVDetector(grid=GRID, width=4), ChannelAdapter(8, 16)


def test_warmup_ramps_distill_terms_linearly():
    teacher, student, adapter = _pair()
    plain = Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter})
    warm = Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter}, warmup_steps=4)
    batch = make_batch(0)
    ref = {k: v.item() for k, v in plain(batch).items()}
    for step, factor in [(0, 0.25), (1, 0.5), (3, 1.0), (10, 1.0)]:
        warm.set_step(step)
        got = warm(batch)
        for k, v in got.items():
            want = ref[k] * (factor if k.startswith("distill/") else 1.0)
            assert v.item() == pytest.approx(want, rel=1e-5), (step, k)
        assert warm.last_distill_scale == pytest.approx(factor)


def test_max_ratio_caps_distill_sum_keeping_relative_weights():
    teacher, student, adapter = _pair()
    plain = Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter})
    batch = make_batch(0)
    ref = {k: v.item() for k, v in plain(batch).items()}
    s_sum = sum(v for k, v in ref.items() if k.startswith("student/"))
    d_sum = sum(v for k, v in ref.items() if k.startswith("distill/"))
    ratio = 0.5 * d_sum / s_sum  # binds: the cap is half of the current distill sum
    capped = Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter}, max_ratio=ratio)
    got = {k: v.item() for k, v in capped(batch).items()}
    assert sum(v for k, v in got.items() if k.startswith("distill/")) == pytest.approx(ratio * s_sum, rel=1e-5)
    assert got["distill/fitnet"] / got["distill/cwd"] == pytest.approx(ref["distill/fitnet"] / ref["distill/cwd"], rel=1e-5)
    assert all(got[k] == pytest.approx(ref[k], rel=1e-6) for k in ref if k.startswith("student/"))
    # a loose cap changes nothing
    loose = Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter},
                      max_ratio=4 * d_sum / s_sum)
    assert all(v.item() == pytest.approx(ref[k], rel=1e-6) for k, v in loose(batch).items())
    # the factor is detached: the distill gradient is the plain one times the factor
    weight = next(student.parameters())
    student.zero_grad()
    capped(batch)["distill/fitnet"].backward()
    g_capped = weight.grad.clone()
    scale = capped.last_distill_scale
    assert 0 < scale < 1
    student.zero_grad()
    plain(batch)["distill/fitnet"].backward()
    torch.testing.assert_close(g_capped, weight.grad * scale)


def test_balancing_arguments_are_checked():
    teacher, student, adapter = _pair()
    with pytest.raises(ValueError, match="warmup_steps"):
        Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter}, warmup_steps=-1)
    with pytest.raises(ValueError, match="max_ratio"):
        Distiller(student=student, teacher=teacher, terms=_terms(), adapters={"neck": adapter}, max_ratio=0.0)
