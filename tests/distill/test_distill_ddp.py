"""Distillation under 2-process DDP (torchrun, gloo on CPU) agrees with the single-process run.

The frozen teacher lives inside the DDP-wrapped Distiller; it has no trainable parameters, so DDP
averages only the student's and the adapters' gradients. With dropout and augmentation off,
2 ranks x batch 1 see the samples of 1 process x batch 2, so the student, its adapter and the
evaluated metrics must agree, and the teacher must be unchanged on every rank.
"""
import json

import torch
from cli_runner import run_cli

from kd3d.engine.checkpoint import latest_checkpoint, load_checkpoint
from kd3d.models.checkpoint import state_fingerprint
from kd3d.testing import toy_config_path

COMMON = ["--set", "optim.epochs=1", "--set", "model.kwargs.dropout=0.0", "--set", "data.train_kwargs={'augment': False}",
          "--set", "runtime.tensorboard=false", "--set", "runtime.ckpt_interval=0"]


def _run(args, cwd, nproc=1, bs=2):
    return run_cli(args, cwd, common=COMMON, nproc=nproc, batch_size=bs)


def test_distillation_ddp_two_processes_match_single(tmp_path):
    _run(["train", toy_config_path(), "--work-dir", str(tmp_path / "teacher")], tmp_path)
    teacher = str(tmp_path / "teacher")
    distill = ["--set", f"distill.teacher_checkpoint={teacher}", "--set", "distill.warmup_steps=4"]
    _run(["train", toy_config_path("distill_fitnet"), "--work-dir", str(tmp_path / "single"), *distill], tmp_path, nproc=1, bs=2)
    _run(["train", toy_config_path("distill_fitnet"), "--work-dir", str(tmp_path / "ddp"), *distill], tmp_path, nproc=2, bs=1)
    a = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    assert a["step"] == b["step"] == 8 and b["world_size"] == 2
    assert set(a["student"]) == set(b["student"])
    for k, v in a["model"].items():  # the whole Distiller except the teacher: student, adapters
        w = b["model"][k]
        if v.is_floating_point():
            torch.testing.assert_close(w, v, atol=1e-5, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
        else:
            assert torch.equal(w, v), k
    t0 = load_checkpoint(latest_checkpoint(tmp_path / "teacher"))["model"]
    # the teacher did not move under DDP: checkpoints record its weights' fingerprint, not the weights
    assert not any(k.startswith("teacher.") for k in b["model"])
    assert b["teacher"]["sha256"] == a["teacher"]["sha256"] == state_fingerprint(t0)
    m1 = json.loads((tmp_path / "single/metrics.json").read_text())
    m2 = json.loads((tmp_path / "ddp/metrics.json").read_text())
    assert m1.keys() == m2.keys()
    for k in m1:
        assert abs(m1[k] - m2[k]) < 1e-6, (k, m1[k], m2[k])
