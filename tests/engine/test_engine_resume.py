"""Exact resume: interrupted + resumed training equals an uninterrupted run, bit for bit."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from engine_helpers import assert_state_equal, toy_config
from kd3d.engine.checkpoint import CheckpointError, latest_checkpoint, list_checkpoints, load_checkpoint
from kd3d.engine.trainer import Trainer, run_experiment
from kd3d.testing import toy_config_path

# 16 samples / batch 2 = 8 steps per epoch; 3 epochs; dropout on; augmentation on.
VALUES = {"optim.epochs": 3, "runtime.ckpt_interval": 4, "runtime.keep_checkpoints": 0}


def _final(work_dir):
    return load_checkpoint(latest_checkpoint(work_dir))


def test_resume_in_process_matches_uninterrupted(tmp_path):
    cfg = toy_config(**VALUES)
    m_full = run_experiment(cfg, tmp_path / "full")
    full = _final(tmp_path / "full")
    assert full["step"] == 24

    # interrupted mid-epoch (step 10, not a checkpoint multiple), then resumed in a new Trainer
    partial = Trainer(cfg, tmp_path / "part", stop_after=10)
    assert partial.fit() == {}
    assert [p.name for p in list_checkpoints(tmp_path / "part")][-1] == "ckpt_step00000010.pth"
    m_res = run_experiment(cfg, tmp_path / "part", resume=True)
    res = _final(tmp_path / "part")
    assert res["step"] == 24
    assert_state_equal(full["model"], res["model"])
    assert full["scheduler"]["last_epoch"] == res["scheduler"]["last_epoch"]
    assert m_full == m_res and m_full["ap"] > 0.5

    # resuming from an older checkpoint (step 4) also reproduces the run
    run_experiment(cfg, tmp_path / "part", resume=str(tmp_path / "part/checkpoints/ckpt_step00000004.pth"))
    assert_state_equal(full["model"], _final(tmp_path / "part")["model"])
    # the train log was truncated to the resume step and rewritten, not duplicated
    steps = [int(r.split(",")[0]) for r in (tmp_path / "part/train.csv").read_text().splitlines()[1:]]
    assert steps == sorted(set(steps))


def test_control_differs_without_resume(tmp_path):
    """Sanity: the equality above is not trivial -- a different seed gives different weights."""
    a = toy_config(**{**VALUES, "optim.epochs": 1})
    run_experiment(a, tmp_path / "a")
    run_experiment(toy_config(**{**VALUES, "optim.epochs": 1, "runtime.seed": 1}), tmp_path / "b")
    wa, wb = _final(tmp_path / "a")["model"], _final(tmp_path / "b")["model"]
    assert any(not torch.equal(wa[k], wb[k]) for k in wa)


def test_resume_rejects_mismatched_checkpoint(tmp_path):
    run_experiment(toy_config(**{**VALUES, "optim.epochs": 1}), tmp_path / "a")
    wide = toy_config(**{**VALUES, "model.kwargs.channels": 8})
    with pytest.raises(CheckpointError, match="shape mismatches: conv1.bias"):
        Trainer(wide, tmp_path / "a", resume=True)


def test_resume_after_sigkill(tmp_path):
    """Kill a real `kd3d train` process with SIGKILL mid-run, resume it, compare with a clean run."""
    sets = ["--set", "optim.epochs=15", "--set", "runtime.ckpt_interval=10", "--set", "runtime.keep_checkpoints=0",
            "--set", "runtime.tensorboard=false", "--set", "runtime.eval_interval=0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "kd3d.cli.main", "train", toy_config_path(), *sets]
    subprocess.run(cmd + ["--work-dir", str(tmp_path / "full")], check=True, env=env, capture_output=True,
                   timeout=120)
    proc = subprocess.Popen(cmd + ["--work-dir", str(tmp_path / "killed")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(list_checkpoints(tmp_path / "killed")) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    last = latest_checkpoint(tmp_path / "killed")
    assert last is not None and load_checkpoint(last)["step"] < 120
    subprocess.run(cmd + ["--work-dir", str(tmp_path / "killed"), "--resume"], check=True, env=env,
                   capture_output=True, timeout=120)
    a, b = _final(tmp_path / "full"), _final(tmp_path / "killed")
    assert a["step"] == b["step"] == 120
    assert_state_equal(a["model"], b["model"])
