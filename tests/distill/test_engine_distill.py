"""Distillation through the training engine: teacher = the toy rig config, students =
``kd3d/testing/toy_configs/distill_*`` (the ``cfg.distill`` hook), checkpoints and evaluation of the student."""
import dataclasses

import pytest
import torch

from kd3d.distill import DistillConfig
from kd3d.engine.config import load_config, override
from kd3d.engine.trainer import Trainer, evaluate, run_experiment
from kd3d.testing import toy_config_path


def _quiet(cfg, **values):
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, progress=False, tensorboard=False))
    return override(cfg, values)


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    work = tmp_path_factory.mktemp("toy_teacher")
    run_experiment(_quiet(load_config(toy_config_path()), **{"optim.max_steps": 4, "runtime.ckpt_interval": 4}), work)
    return work


@pytest.mark.parametrize("config", ["distill_fitnet", "distill_distillbev"])
def test_train_student_through_engine(config, teacher_dir, tmp_path):
    cfg = _quiet(load_config(toy_config_path(config)), **{"optim.max_steps": 3, "runtime.ckpt_interval": 3,
                                         "distill.teacher_checkpoint": str(teacher_dir)})
    assert isinstance(cfg.distill, DistillConfig)
    trainer = Trainer(cfg, tmp_path)
    teacher_state = {k: v.clone() for k, v in trainer.module.teacher.state_dict().items()}
    trainer.fit()
    assert all(torch.equal(v, teacher_state[k]) for k, v in trainer.module.teacher.state_dict().items())
    ckpt = sorted((tmp_path / "checkpoints").glob("ckpt_step*.pth"))[-1]
    state = torch.load(ckpt, weights_only=True)
    assert set(state["student"]) == set(trainer.model.state_dict())
    metrics = evaluate(cfg, ckpt, tmp_path / "eval")
    assert "ap" in metrics


def test_untrained_teacher_is_refused(tmp_path):
    cfg = _quiet(load_config(toy_config_path("distill_fitnet")), **{"distill.teacher_checkpoint": ""})
    with pytest.raises(ValueError, match="untrained teacher"):
        Trainer(cfg, tmp_path)


def test_cached_teacher_through_engine(teacher_dir, tmp_path):
    """cfg.distill.cache_dir: the first epoch fills the cache, later epochs replay it (toy data
    without augmentation); the trained student is identical in structure to the uncached one."""
    cache = tmp_path / "cache"
    cfg = _quiet(load_config(toy_config_path("distill_fitnet")), **{"optim.max_steps": 16, "runtime.ckpt_interval": 16,
                                                      "distill.teacher_checkpoint": str(teacher_dir),
                                                      "distill.cache_dir": str(cache)})
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    assert len(list((cache / "entries").glob("*.pt"))) == 16  # every toy training sample, once


def test_precomputed_cache_then_training_never_runs_the_teacher(teacher_dir, tmp_path, monkeypatch):
    from kd3d.engine.teacher_cache import build_cache_for_config

    cache = tmp_path / "cache"
    cfg = _quiet(load_config(toy_config_path("distill_fitnet")), **{"optim.max_steps": 4, "runtime.ckpt_interval": 4,
                                                      "distill.teacher_checkpoint": str(teacher_dir),
                                                      "distill.cache_dir": str(cache)})
    assert build_cache_for_config(cfg) == 16
    assert build_cache_for_config(cfg) == 0
    trainer = Trainer(cfg, tmp_path / "run")

    def no_teacher(*a, **k):
        raise AssertionError("the teacher ran although every sample is cached")

    monkeypatch.setattr(trainer.module.teacher, "forward", no_teacher)
    trainer.fit()


def test_engine_sets_step_for_distill_warmup(teacher_dir, tmp_path):
    """`--set distill.warmup_steps=...` reaches the Distiller and the trainer advances its step."""
    from kd3d.engine.config import load_config as load

    cfg = load(toy_config_path("distill_fitnet"), [f"distill.teacher_checkpoint={teacher_dir!s}", "distill.warmup_steps=10",
                                      "distill.max_ratio=0.5"])
    cfg = _quiet(cfg, **{"optim.max_steps": 3, "runtime.ckpt_interval": 0, "runtime.log_interval": 1})
    trainer = Trainer(cfg, tmp_path)
    assert trainer.module.warmup_steps == 10 and trainer.module.max_ratio == 0.5
    trainer.fit()
    assert trainer.module.step == 2  # set before the third (last) step
    assert trainer.module.last_distill_scale <= 0.3 + 1e-9


def test_cache_builder_names_a_missing_teacher_like_training(tmp_path):
    """The cache builder resolves distill.teacher_checkpoint with the training path rule and says
    which field and absolute path it read."""
    from kd3d.engine.teacher_cache import build_cache_for_config
    from kd3d.models.checkpoint import CheckpointNotFoundError

    cfg = _quiet(load_config(toy_config_path("distill_fitnet")),
                 **{"distill.teacher_checkpoint": str(tmp_path / "nowhere"), "distill.cache_dir": str(tmp_path / "c")})
    with pytest.raises(CheckpointNotFoundError, match=r"distill\.teacher_checkpoint=.*nowhere.*train the teacher"):
        build_cache_for_config(cfg)
