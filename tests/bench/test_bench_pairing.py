"""Paired seeds hold in kd3d's trainer: with the same seed a baseline run and a distillation run
start from the same student weights and train on the same batches in the same order with the
same augmentation (what makes bench/report.py's arm - baseline a paired difference)."""
import dataclasses

import pytest
import torch

from kd3d.engine.trainer import Trainer
from kd3d.testing import toy_config_path
from kd3d.engine.config import load_config


def _record(cfg, work, steps):
    """(initial student state, [(tokens, first point of each sample)] of the first ``steps`` batches
    the training loop consumed)."""
    trainer = Trainer(cfg, work, overwrite=True)
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    seen = []
    step = trainer._train_step

    def spy(batch):
        seen.append(([s.token for s in batch.samples], [p[0].clone() for p in batch.points]))
        return step(batch)

    trainer._train_step = spy
    trainer.fit()
    assert len(seen) == steps
    return init, seen


def _cfg(name, seed, steps, distill):
    cfg = load_config(toy_config_path(name))
    rt = dataclasses.replace(cfg.runtime, seed=seed, progress=False, tensorboard=False, eval_interval=0)
    cfg = dataclasses.replace(cfg, runtime=rt, optim=dataclasses.replace(cfg.optim, max_steps=steps))
    if not distill:
        return dataclasses.replace(cfg, distill=None)
    return dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teacher_checkpoint="",
                                                                allow_untrained_teacher=True))


@pytest.mark.parametrize("method", ["distill_fitnet", "distill_distillbev"])
def test_same_seed_same_init_and_batches_across_arms(tmp_path, method):
    torch.set_num_threads(1)
    steps = 10  # 8 steps per epoch (16 samples, batch 2): the second epoch's order is checked too
    base_init, base_batches = _record(_cfg(method, 3, steps, False), tmp_path / "base", steps)
    kd_init, kd_batches = _record(_cfg(method, 3, steps, True), tmp_path / "kd", steps)
    assert base_init.keys() == kd_init.keys()
    for k in base_init:
        assert torch.equal(base_init[k], kd_init[k]), k
    assert [t for t, _ in base_batches] == [t for t, _ in kd_batches]
    for (_, a), (_, b) in zip(base_batches, kd_batches):  # same augmentation, not only the same samples
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # and the seed matters: another seed changes the init and the order
    other_init, other_batches = _record(_cfg(method, 4, steps, False), tmp_path / "other", steps)
    assert any(not torch.equal(base_init[k], other_init[k]) for k in base_init if base_init[k].is_floating_point())
    assert [t for t, _ in base_batches] != [t for t, _ in other_batches]
