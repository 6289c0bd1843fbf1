"""Resume and the config: a changed schedule length is honoured explicitly, other changes a
resumed run cannot apply are refused, and the saved config.json is never rewritten with them."""
import json
import logging
import math

import pytest

from engine_helpers import toy_config
from kd3d.engine.checkpoint import latest_checkpoint, load_checkpoint
from kd3d.engine.config import ConfigError, load_config
from kd3d.engine.trainer import Trainer, run_experiment

BASE = {"optim.max_steps": 4, "runtime.ckpt_interval": 2, "runtime.keep_checkpoints": 0, "eval.evaluator": "none"}


def _one_cycle_lr(step: int, total: int, lr: float, pct: float = 0.4, div: float = 10.0, final: float = 1e4):
    """torch's OneCycleLR (cosine, two phases) at ``step``, written out from its definition."""
    initial, low = lr / div, lr / div / final
    up_end, down_end = pct * total - 1, total - 1
    if step <= up_end:
        start, end, frac = initial, lr, step / up_end
    else:
        start, end, frac = lr, low, (step - up_end) / (down_end - up_end)
    return end + (start - end) / 2 * (1 + math.cos(math.pi * frac))


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_resume_with_longer_schedule_rebuilds_it(tmp_path):
    cfg = toy_config(**BASE)
    run_experiment(cfg, tmp_path)
    assert load_checkpoint(latest_checkpoint(tmp_path))["step"] == 4
    longer = toy_config(**{**BASE, "optim.max_steps": 10})
    records = _Records()
    logging.getLogger("kd3d").addHandler(records)  # the kd3d logger does not propagate to caplog
    try:
        trainer = Trainer(longer, tmp_path, resume=True)  # used to crash inside OneCycleLR
    finally:
        logging.getLogger("kd3d").removeHandler(records)
    assert trainer.step == 4
    lr = trainer.optimizer.param_groups[0]["lr"]
    assert lr == pytest.approx(_one_cycle_lr(4, 10, 1e-2), rel=1e-12)
    assert any("schedule length changed from 4 to 10" in m for m in records.messages)
    trainer.fit()
    final = load_checkpoint(latest_checkpoint(tmp_path))
    assert final["step"] == 10 and final["scheduler"]["total_steps"] == 10
    assert json.loads((tmp_path / "config.json").read_text())["optim"]["max_steps"] == 10  # what it used


def test_resume_refuses_changes_it_cannot_honour(tmp_path):
    run_experiment(toy_config(**BASE), tmp_path)
    saved = (tmp_path / "config.json").read_text()
    with pytest.raises(ConfigError, match=r"optim\.lr \(0\.01 -> 0\.5\).*would not take effect"):
        Trainer(toy_config(**{**BASE, "optim.lr": 0.5}), tmp_path, resume=True)
    with pytest.raises(ConfigError, match=r"model\.kwargs\.dropout"):
        Trainer(toy_config(**{**BASE, "model.kwargs.dropout": 0.2}), tmp_path, resume=True)
    assert (tmp_path / "config.json").read_text() == saved, "config.json rewritten with values it did not use"
    with pytest.raises(ConfigError, match="past the new schedule length of 3 steps"):
        Trainer(toy_config(**{**BASE, "optim.max_steps": 3}), tmp_path, resume=True)
    # logging / evaluation fields may change and take effect
    t = Trainer(toy_config(**{**BASE, "runtime.log_interval": 1, "optim.max_steps": 4}), tmp_path, resume=True)
    assert t.step == 4 and json.loads((tmp_path / "config.json").read_text())["runtime"]["log_interval"] == 1


def test_cli_resume_and_test_use_the_saved_config(tmp_path, capsys):
    from kd3d.cli.main import main
    from kd3d.testing import toy_config_path

    work = tmp_path / "run"
    sets = [f"--set={k}={v}" for k, v in {**BASE, "runtime.tensorboard": "false"}.items()]
    assert main(["train", toy_config_path(), *sets, "--work-dir", str(work), "--stop-after", "2"]) == 0
    capsys.readouterr()
    # no CONFIG: the run's config.json (the toy config has no name to find it by otherwise)
    assert main(["train", "--resume", "--work-dir", str(work)]) == 0
    out = capsys.readouterr().out
    assert f"using the run's saved config {work / 'config.json'}" in out
    assert load_checkpoint(latest_checkpoint(work))["step"] == 4
    assert main(["train", "--resume", "--work-dir", str(work), "--set", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "optim.lr (0.01 -> 0.5)" in err
    assert load_config(work / "config.json").optim.lr == 0.01

    ckpt = latest_checkpoint(work)
    assert main(["test", "--checkpoint", str(ckpt), "--out", str(tmp_path / "out")]) == 0
    assert f"kd3d test: using the run's saved config {work / 'config.json'}" in capsys.readouterr().out
    (work / "config.json").unlink()  # then the config stored inside the checkpoint
    assert main(["test", "--checkpoint", str(ckpt)]) == 0
    assert f"using the config saved in {ckpt}" in capsys.readouterr().out
    assert main(["train", "--resume"]) == 2
    assert "needs --work-dir" in capsys.readouterr().err


def test_teacher_checkpoint_is_resolved_from_the_cwd_and_logged(tmp_path, monkeypatch):
    """README rule: a relative teacher path is read from the current directory, a work dir means
    its latest checkpoint, and the file loaded is logged."""
    from kd3d.distill.build import build_distiller
    from kd3d.models.build import build_model
    from kd3d.testing import toy_config_path

    monkeypatch.chdir(tmp_path)
    run_experiment(toy_config(**BASE), "work_dirs/toy")  # the toy teacher, where distill_fitnet looks
    cfg = load_config(toy_config_path("distill_fitnet"))
    assert cfg.distill.teacher_checkpoint == "work_dirs/toy"
    records = _Records()
    logging.getLogger("kd3d").addHandler(records)
    logging.getLogger("kd3d").setLevel(logging.INFO)
    try:
        build_distiller(cfg.distill, student=build_model(cfg.model))
    finally:
        logging.getLogger("kd3d").removeHandler(records)
    expected = tmp_path / "work_dirs/toy/checkpoints/ckpt_step00000004.pth"
    assert any(m.endswith(f"loaded weights from {expected}") for m in records.messages), records.messages
