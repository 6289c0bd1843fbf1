"""Distillation checkpoints record the teacher's checkpoint and a fingerprint of its weights
instead of carrying the weights; a resume checks the fingerprint of the teacher it loads."""
import pytest
import torch

from engine_helpers import assert_state_equal
from kd3d.engine.checkpoint import CheckpointError, atomic_save, latest_checkpoint, load_checkpoint
from kd3d.engine.config import load_config, override
from kd3d.engine.trainer import Trainer, run_experiment
from kd3d.models.checkpoint import state_fingerprint
from kd3d.testing import toy_config_path

QUIET = {"runtime.progress": False, "runtime.tensorboard": False}


def _cfg(teacher, **values):
    cfg = load_config(toy_config_path("distill_fitnet"))
    return override(cfg, {**QUIET, "optim.max_steps": 4, "runtime.ckpt_interval": 2, "runtime.keep_checkpoints": 0,
                          "distill.teacher_checkpoint": str(teacher), **values})


@pytest.fixture()
def teacher(tmp_path):
    work = tmp_path / "teacher"
    run_experiment(override(load_config(toy_config_path()), {**QUIET, "optim.max_steps": 2,
                                                            "runtime.ckpt_interval": 2}), work)
    return latest_checkpoint(work)


def test_checkpoint_records_teacher_instead_of_weights(tmp_path, teacher):
    work = tmp_path / "student"
    trainer = Trainer(_cfg(teacher), work, stop_after=2)
    trainer.fit()
    state = load_checkpoint(latest_checkpoint(work))
    assert state["step"] == 2
    assert not [k for k in state["model"] if k.startswith("teacher.")]
    assert any(k.startswith("student.") for k in state["model"]) and state["student"]
    teacher_weights = load_checkpoint(teacher)["model"]
    assert state["teacher"] == {"path": str(teacher), "sha256": state_fingerprint(teacher_weights)}

    # resume: the teacher comes from its own checkpoint, the fingerprint matches, training goes on
    resumed = Trainer(_cfg(teacher), work, resume=True)
    assert resumed.step == 2
    assert_state_equal({k: v for k, v in resumed.module.teacher.state_dict().items()}, teacher_weights)
    resumed.fit()
    assert load_checkpoint(latest_checkpoint(work))["step"] == 4


def test_resume_refuses_a_changed_teacher(tmp_path, teacher):
    work = tmp_path / "student"
    Trainer(_cfg(teacher), work, stop_after=2).fit()
    ckpt = load_checkpoint(teacher)
    ckpt["model"] = {k: v + 1 if v.is_floating_point() else v for k, v in ckpt["model"].items()}
    atomic_save(ckpt, teacher)  # the teacher was retrained into the same file
    with pytest.raises(CheckpointError, match=r"ckpt_step00000002\.pth: it was trained with teacher .*teacher/"
                                              r"checkpoints/ckpt_step00000002\.pth .*resume with the original teacher"):
        Trainer(_cfg(teacher), work, resume=True)


def test_fingerprint_is_order_independent_and_sees_one_value():
    a = {"w": torch.zeros(3), "b": torch.ones(2, dtype=torch.bfloat16), "n": torch.tensor(3)}
    b = dict(reversed(list(a.items())))
    assert state_fingerprint(a) == state_fingerprint(b)
    c = dict(a, w=torch.tensor([0.0, 0.0, 1e-30]))
    assert state_fingerprint(a) != state_fingerprint(c)
