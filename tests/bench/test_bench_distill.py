"""bench/distill.py end to end on the toy suite (2-4 steps per run): every finished run appended
once to the results file, finished runs skipped, an interrupted run resumed from its checkpoint
(same metrics as an uninterrupted one), two workers sharing a suite, the report regenerated from
the results file alone."""
import dataclasses
import importlib.util
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_distill", ROOT / "bench" / "distill.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_distill"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines() if x.strip()]


def _args(tmp_path, *extra, seeds=1, steps=2, name="r"):
    return ["--suite", "toy", "--seeds", str(seeds), "--steps", str(steps), "--teacher-steps", "2", "--work-dir",
            str(tmp_path / f"work_{name}"), "--results", str(tmp_path / f"{name}.jsonl"),
            "--out", str(tmp_path / f"{name}.md"), *extra]


def test_toy_suite_appends_runs_skips_them_and_reports(tmp_path):
    bench = _bench()
    args = _args(tmp_path, "--heldout-root", str(tmp_path / "unused"), "--heldout-split", "heldout")
    assert bench.main(args) == 0
    recs = _lines(tmp_path / "r.jsonl")
    assert [(r["kind"], r["arm"]) for r in recs] == [("teacher", "teacher"), ("run", "baseline"),
                                                     ("run", "FitNet+CWD"), ("run", "DistillBEV")]
    for r in recs:  # what the report needs, and where the run came from
        assert {"suite", "seed", "steps", "config", "overrides", "metrics", "seconds", "commit", "id"} <= r.keys()
        assert r["overrides"]["runtime.seed"] == 0 and "ap" in r["metrics"]
    assert recs[2]["teacher"] == {"config": "toy/toy", "steps": 2} and recs[1]["teacher"] is None
    text = (tmp_path / "r.md").read_text()
    assert "## Benchmark v2: suite `toy`, 2 steps" in text and "| teacher | 1 |" in text
    assert "| FitNet+CWD | 1 |" in text and "(n = 1)" in text
    assert bench.main(args) == 0  # a second invocation: every run is skipped
    assert len(_lines(tmp_path / "r.jsonl")) == 4
    assert (tmp_path / "r.md").read_text() == text  # regenerated in place, not appended
    assert all(r["heldout"]["split"] == "heldout" and "ap" in r["heldout"]["metrics"] for r in recs)
    assert "(held-out)" in (tmp_path / "r.md").read_text()


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path):
    """A worker killed mid-run leaves a checkpoint and a lock of a dead process: the next
    invocation takes the lock over, resumes, and records what an uninterrupted run records."""
    bench = _bench()
    from kd3d.engine.trainer import Trainer

    assert bench.main(_args(tmp_path, "--no-report", steps=4, name="full")) == 0
    full = {r["arm"]: r for r in _lines(tmp_path / "full.jsonl")}
    # simulate the crash: the baseline of seed 0 trained to step 2 of 4, its lock held by a dead pid
    args = bench.parse_args(_args(tmp_path, steps=4, name="cut"))
    suite = bench.Suite("toy", bench.SUITES["toy"], args, dict(bench.SUITES["toy"]["methods"]), {})
    job = suite.jobs[1]
    assert job.arm == "baseline"
    rid, info = suite.ident(job)
    Trainer(info["cfg"], suite.run_dir(job), overwrite=True, stop_after=2).fit()
    (suite.run_dir(job) / "bench_run_id").write_text(rid)  # what the bench writes when it starts a run
    # a checkpoint left by another run (other id) in the teacher's dir is not resumed but cleared
    other = suite.jobs[0]
    Trainer(suite.ident(other)[1]["cfg"], suite.run_dir(other), overwrite=True, stop_after=1).fit()
    (suite.run_dir(other) / "bench_run_id").write_text("run:some/other/run")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = suite.work / "locks" / (rid.replace("/", "_").replace(":", "_") + ".lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()} {dead.pid}")
    assert bench.main(_args(tmp_path, "--no-report", steps=4, name="cut")) == 0
    cut = {r["arm"]: r for r in _lines(tmp_path / "cut.jsonl")}
    assert cut["baseline"]["resumed_from_step"] == 2 and full["baseline"]["resumed_from_step"] is None
    assert cut[other.arm]["resumed_from_step"] is None
    for arm in full:  # exact resume: the same metrics as the uninterrupted run
        assert cut[arm]["metrics"] == pytest.approx(full[arm]["metrics"], abs=1e-9), arm


def test_two_workers_share_a_suite_without_duplicates(tmp_path):
    """Worker 1/2 in a subprocess, worker 0/2 in this process, at the same time."""
    common = _args(tmp_path, "--poll", "0.5", seeds=1)[:-2]
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "distill.py"), *common, "--worker", "1/2",
                             "--out", str(tmp_path / "w1.md")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        locks = tmp_path / "work_r" / "locks"
        for _ in range(600):  # until worker 1 has claimed its first run (the baseline: no teacher needed)
            if (locks.exists() and any(locks.iterdir())) or (tmp_path / "r.jsonl").exists() or proc.poll() is not None:
                break
            time.sleep(0.2)
        assert _bench().main([*common, "--worker", "0/2", "--out", str(tmp_path / "w0.md")]) == 0
        out, _ = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    ids = [r["id"] for r in _lines(tmp_path / "r.jsonl")]
    assert len(ids) == len(set(ids)) == 1 + 3  # teacher + baseline + 2 methods, each trained once
    assert {r["worker"] for r in _lines(tmp_path / "r.jsonl")} == {"0/2", "1/2"}  # both did work
    tables = [(tmp_path / f"w{i}.md").read_text().split("| model |")[1] for i in (0, 1)]
    assert tables[0] == tables[1]


def test_parse_arm_spec():
    mod = _bench()
    assert mod._parse_arm("BEVDistill r0.25=synth/distill_bevdistill;distill.max_ratio=0.25; distill.warmup_steps=100") == (
        "BEVDistill r0.25", "synth/distill_bevdistill", {"distill.max_ratio": "0.25", "distill.warmup_steps": "100"})
    assert mod._parse_arm("PVD=synth/distill_pvd") == ("PVD", "synth/distill_pvd", {})
    for bad in ("no-equals", "X=", "X=cfg;novalue"):
        with pytest.raises(SystemExit, match="--arm"):
            mod._parse_arm(bad)


def test_v2_teacher_is_the_calibration_run_trained_once(tmp_path, monkeypatch):
    """A v2 suite's teacher is bench/calibrate.py's run at the teacher budget (seed 0): the first
    worker that needs it trains it through calibrate.py (one calibration record), the teacher row
    of the distillation results carries that run's metrics, the distilled arms read its work dir,
    and a second invocation trains nothing."""
    from kd3d.testing import toy_config_path

    bench = _bench()
    import calibrate

    monkeypatch.setattr(calibrate, "RESULTS", tmp_path / "calibration.jsonl")
    monkeypatch.setattr(calibrate, "DEFAULT_WORK_DIR", tmp_path / "calib")
    teacher = str(toy_config_path("toy"))
    monkeypatch.setitem(bench.SUITES, "toy-v2", {**bench.SUITES["toy"], "teacher": teacher, "v2": True,
                                                 "methods": {"DistillBEV": "toy/distill_distillbev"}})
    args = ["--suite", "toy-v2", "--seeds", "1", "--steps", "2", "--teacher-steps", "2", "--work-dir",
            str(tmp_path / "work"), "--results", str(tmp_path / "r.jsonl"), "--out", str(tmp_path / "r.md")]
    assert bench.main(args) == 0
    calib = _lines(tmp_path / "calibration.jsonl")
    assert len(calib) == 1 and calib[0]["config"] == teacher and calib[0]["steps"] == 2 and calib[0]["seed"] == 0
    run_dir = calibrate.run_dir(tmp_path / "calib", teacher, 2, 0)
    assert list((run_dir / "checkpoints").glob("ckpt_step*.pth")), "the teacher was not trained in calibrate's dir"
    recs = _lines(tmp_path / "r.jsonl")
    assert [(r["kind"], r["arm"]) for r in recs] == [("teacher", "teacher"), ("run", "baseline"), ("run", "DistillBEV")]
    assert recs[0]["metrics"] == calib[0]["metrics"]
    assert recs[2]["teacher"] == {"config": teacher, "steps": 2}
    assert not (tmp_path / "bench_v2_teachers").exists()
    assert bench.main(args) == 0  # everything is done: nothing retrained, nothing appended
    assert len(_lines(tmp_path / "calibration.jsonl")) == 1 and len(_lines(tmp_path / "r.jsonl")) == 3


def test_detection_suites_cache_their_teacher_by_default_and_the_cache_changes_no_data():
    """camera, voxel and pillar read their teacher from a cache unless --no-teacher-cache: none of
    their configs augments in BEV, so dropping those augmentations (what a cached run does) leaves
    every arm's data as it was. seg augments in BEV: its teacher runs live."""
    bench = _bench()
    assert bench.parse_args(["--suite", "camera"]).teacher_cache is True
    assert bench.parse_args(["--suite", "camera", "--no-teacher-cache"]).teacher_cache is False
    assert bench.parse_args(["--suite", "seg"]).teacher_cache is False
    assert bench.parse_args(["--suite", "seg", "--teacher-cache"]).teacher_cache is True
    for name in ("camera", "voxel", "pillar"):
        suite = bench.SUITES[name]
        assert bench.parse_args(["--suite", name]).teacher_cache is True
        for config in [suite["baseline"], *suite["methods"].values()]:
            cfg = bench._load(config)
            assert bench._without_bev_aug(cfg).data.train_kwargs == cfg.data.train_kwargs, config
    seg = bench._load(bench.SUITES["seg"]["baseline"])
    assert bench._without_bev_aug(seg).data.train_kwargs != seg.data.train_kwargs
