"""2-process DDP (torchrun, gloo on CPU) agrees with the single-process run.

With dropout and augmentation off, 2 ranks x batch 1 see exactly the samples of 1 process x
batch 2 at every step (the sampler shards each epoch's permutation), and DDP averages the
gradients, so weights and metrics must agree up to float summation order.
"""
import json

from cli_runner import run_cli
from engine_helpers import assert_state_equal
from kd3d.engine.checkpoint import latest_checkpoint, load_checkpoint
from kd3d.testing import toy_config_path

TOY = toy_config_path()

COMMON = ["--set", "optim.epochs=2", "--set", "model.kwargs.dropout=0.0", "--set", "data.train_kwargs={'augment': False}",
          "--set", "runtime.tensorboard=false", "--set", "runtime.ckpt_interval=0"]


def _run(args, tmp_path, name, nproc=1, bs=2):
    return run_cli(args, tmp_path, common=COMMON, nproc=nproc, batch_size=bs)


def test_ddp_two_processes_match_single(tmp_path):
    _run(["train", TOY, "--work-dir", str(tmp_path / "single")], tmp_path, "single", nproc=1, bs=2)
    _run(["train", TOY, "--work-dir", str(tmp_path / "ddp")], tmp_path, "ddp", nproc=2, bs=1)
    a = load_checkpoint(latest_checkpoint(tmp_path / "single"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ddp"))
    assert a["step"] == b["step"] == 16 and b["world_size"] == 2
    assert_state_equal(a["model"], b["model"], exact=False, atol=1e-5)
    m_single = json.loads((tmp_path / "single/metrics.json").read_text())
    m_ddp = json.loads((tmp_path / "ddp/metrics.json").read_text())
    assert m_single.keys() == m_ddp.keys() and m_single["ap"] > 0
    for k in m_single:
        assert abs(m_single[k] - m_ddp[k]) < 1e-6, (k, m_single[k], m_ddp[k])

    # `kd3d test` of the same checkpoint under 2 processes: predictions are gathered on rank 0
    # (15 val samples: the 2nd rank gets a padded duplicate) and the metrics are identical.
    ckpt = str(latest_checkpoint(tmp_path / "single"))
    extra = ["--set", "data.kwargs={'num_samples': 15}"]
    t1 = _run(["test", TOY, "--checkpoint", ckpt, "--out", str(tmp_path / "t1"), *extra], tmp_path, "test1")
    t2 = _run(["test", TOY, "--checkpoint", ckpt, "--out", str(tmp_path / "t2"), *extra], tmp_path, "test2", nproc=2)
    r1 = json.loads((tmp_path / "t1/metrics.json").read_text())
    r2 = json.loads((tmp_path / "t2/metrics.json").read_text())
    assert r1 == r2 and r1["num_dets"] > 0
    assert t2.count('"ap"') == 1, "only rank 0 prints the metrics"
