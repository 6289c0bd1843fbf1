"""bench/calibrate.py on the toy config (2-3 steps per run): each finished run appended once with
its metrics and step time, finished runs skipped on a second invocation; the planned grid of the
bench suites puts each config's planned budget first and runs a shared teacher once."""
import importlib.util
import json
import sys
from pathlib import Path

from kd3d.testing import toy_config_path

ROOT = Path(__file__).resolve().parents[2]


def _calibrate():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_calibrate", ROOT / "bench" / "calibrate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_toy_curve_appended_once_and_skipped(tmp_path):
    cal = _calibrate()
    results = tmp_path / "cal.jsonl"
    args = ["--config", toy_config_path("toy"), "--steps", "2,3", "--work-dir", str(tmp_path / "w"),
            "--results", str(results), "--nice", "0"]
    assert cal.main(args) == 0
    recs = [json.loads(x) for x in results.read_text().splitlines()]
    assert [(r["steps"], r["seed"], r["threads"]) for r in recs] == [(2, 0, 1), (3, 0, 1)]
    assert all(r["kind"] == "calibration" and r["metrics"] and r["sec_per_step"] > 0 for r in recs)
    assert len({r["id"] for r in recs}) == 2
    assert cal.main(args) == 0  # everything done: nothing re-run, nothing appended
    assert len(results.read_text().splitlines()) == 2


def test_planned_grid_order_and_shared_teacher():
    cal = _calibrate()
    jobs = cal.grid(["camera", "voxel"], ["teacher", "student"], None, [0])
    keys = [(j["config"], j["steps"]) for j in jobs]
    assert len(keys) == len(set(keys))  # bench/lidar_teacher of both suites: once
    plans = [j for j in jobs if j["plan"]]
    assert jobs[:len(plans)] == plans  # planned budgets first
    assert {(j["config"], j["steps"]) for j in plans} == {
        ("bench/lidar_teacher", 1200), ("bench/camera_student", 1500), ("bench/voxel_student", 1200)}
