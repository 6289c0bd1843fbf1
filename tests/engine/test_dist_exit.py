"""Deterministic end of torchrun-launched CLI processes (kd3d.engine.dist.finish) and the CPU
thread choice (kd3d.engine.dist.configure_cpu_threads)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from kd3d.engine import dist
from kd3d.errors import ConfigError
from kd3d.testing import toy_config_path


def test_finish_returns_without_a_process_group():
    assert not dist.launched_here()
    assert dist.finish(0) == 0 and dist.finish(3) == 3


def test_finish_flushes_and_exits_with_the_code(tmp_path):
    """A process that initialised a (1-rank gloo) group and built DDP: ``finish`` flushes what was
    printed and logged, exits with the given status and runs nothing after it (no teardown)."""
    script = tmp_path / "rank.py"
    script.write_text(textwrap.dedent(f"""
        import atexit, logging, os, sys
        import torch
        from kd3d.engine import dist
        os.environ.update(WORLD_SIZE="2", RANK="0")  # init_from_env only acts for WORLD_SIZE > 1
        import torch.distributed as td
        td_init = td.init_process_group
        td.init_process_group = lambda backend: td_init(backend, init_method="tcp://127.0.0.1:0", rank=0,
                                                        world_size=1)
        assert dist.init_from_env(torch.device("cpu")) and dist.launched_here()
        model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(2, 2))
        model(torch.ones(1, 2)).sum().backward()
        log = logging.getLogger("kd3d.test")
        log.addHandler(logging.FileHandler({str(tmp_path / "run.log")!r}))
        log.warning("last log line")
        atexit.register(lambda: print("atexit ran"))
        print("metrics printed", end="")  # no newline: only a flush writes it
        dist.finish(7)
        print("after finish")
    """))
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 7, out.stderr[-2000:]
    assert out.stdout == "metrics printed"  # flushed; neither the next print nor atexit ran
    assert (tmp_path / "run.log").read_text() == "last log line\n"
    assert "terminate called" not in out.stderr


@pytest.mark.parametrize("attempt", range(3))
def test_torchrun_training_exits_cleanly(tmp_path, attempt):
    """2 gloo ranks train the toy model; the launch exits 0, no rank aborts at exit, and the
    printed metrics, metrics.json and the log's last line were all written before the exit."""
    work = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "0",
           "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0", "-m", "kd3d.cli.main", "train",
           str(toy_config_path()), "--work-dir", str(work), "--set", "optim.max_steps=4", "--set",
           "data.batch_size=1", "--set", "runtime.progress=false"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    assert "terminate called" not in out.stderr and "Signal" not in out.stderr, out.stderr[-3000:]
    printed = json.loads(out.stdout[out.stdout.index("{"):])
    assert printed == json.loads((work / "metrics.json").read_text()) and "ap" in printed
    assert "step 4 eval:" in (work / "train.log").read_text().splitlines()[-1]


def test_auto_cpu_threads_rule():
    # usable CPUs // processes on this machine; 1 when the load average already fills the CPUs
    assert dist.auto_cpu_threads(1, cpus=2, load=0.3, others=0) == 2  # idle 2-core machine: x1.65 faster than 1
    assert dist.auto_cpu_threads(1, cpus=2, load=1.9, others=0) == 2
    assert dist.auto_cpu_threads(1, cpus=2, load=2.0, others=0) == 1  # busy: x4.5 faster than 2 threads
    assert dist.auto_cpu_threads(1, cpus=2, load=4.6, others=0) == 1
    assert dist.auto_cpu_threads(2, cpus=2, load=0.0, others=0) == 1
    assert dist.auto_cpu_threads(2, cpus=16, load=3.0, others=0) == 8
    assert dist.auto_cpu_threads(4, cpus=8, load=0.0, others=0) == 2
    assert dist.auto_cpu_threads(3, cpus=3, load=0.0, others=0) == 1


def test_auto_cpu_threads_counts_jobs_the_load_average_has_not_seen_yet():
    """A job started a minute ago: the load average reads 1.8 on 2 CPUs, but one task is running;
    a second thread beside it made both slower (measured 2.9 -> 7.2 s/step for the other job)."""
    from kd3d.engine import dist

    assert dist.auto_cpu_threads(1, cpus=2, load=1.8, others=1) == 1
    assert dist.auto_cpu_threads(1, cpus=2, load=1.8, others=0) == 2  # the load is gone: both CPUs are free
    assert dist.auto_cpu_threads(1, cpus=16, load=2.0, others=4) == 12
    assert dist.auto_cpu_threads(2, cpus=16, load=0.0, others=4) == 8
    assert dist.auto_cpu_threads(1, cpus=2, load=0.0, others=5) == 1
    assert dist.running_others() >= 0
    assert dist.usable_cpus() == len(os.sched_getaffinity(0))


def test_configure_cpu_threads(monkeypatch):
    before = torch.get_num_threads()
    try:
        assert dist.configure_cpu_threads(3) == (3, "runtime.threads") and torch.get_num_threads() == 3
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert dist.configure_cpu_threads(0) == (2, "OMP_NUM_THREADS") and torch.get_num_threads() == 2
        monkeypatch.delenv("OMP_NUM_THREADS")
        monkeypatch.setattr(dist, "load_average", lambda: 0.0)
        monkeypatch.setattr(dist, "running_others", lambda: 0)  # an idle machine, whatever runs beside the test
        monkeypatch.setattr(dist, "_AUTO_CHOICE", {})  # a fresh process's decision
        n, why = dist.configure_cpu_threads(0, local_ranks=1)
        assert n == dist.usable_cpus() and why.startswith("auto:") and torch.get_num_threads() == n
        monkeypatch.setattr(dist, "running_others", lambda: dist.usable_cpus())  # every CPU taken right now
        monkeypatch.setattr(dist, "_AUTO_CHOICE", {})
        n, why = dist.configure_cpu_threads(0, local_ranks=1)
        assert n == 1 and f"{dist.usable_cpus()} other running task(s)" in why and torch.get_num_threads() == 1
        monkeypatch.setattr(dist, "load_average", lambda: 99.0)
        monkeypatch.setattr(dist, "_AUTO_CHOICE", {})
        n, why = dist.configure_cpu_threads(0, local_ranks=1)
        assert n == 1 and "load average 99.0" in why and torch.get_num_threads() == 1
        monkeypatch.setattr(dist, "load_average", lambda: 0.0)  # the machine goes idle: the process keeps its choice
        assert dist.configure_cpu_threads(0, local_ranks=1) == (n, why)
        for bad in (-1, 1.5, "2", True):
            with pytest.raises(ConfigError, match="runtime.threads: expected an integer >= 0"):
                dist.configure_cpu_threads(bad)
    finally:
        torch.set_num_threads(before)


def test_threads_is_free_on_resume():
    """A checkpoint saved before runtime.threads existed (or with another count) still resumes."""
    import dataclasses

    from kd3d.engine.config import ExperimentConfig, config_to_dict
    from kd3d.engine.resume import check_resume_config

    cfg = ExperimentConfig()
    saved = json.loads(json.dumps(config_to_dict(cfg)))
    del saved["runtime"]["threads"]
    check_resume_config(saved, dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, threads=2)), "ckpt")
