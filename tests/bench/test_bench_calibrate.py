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


def test_report_gap_at_planned_budgets(tmp_path):
    cal = _calibrate()
    path = tmp_path / "cal.jsonl"
    rows = [("bench/lidar_teacher", 1200, 0, 0.40), ("bench/voxel_student", 1200, 0, 0.30),
            ("bench/voxel_student", 1200, 1, 0.32), ("bench/voxel_student", 300, 0, 0.10)]
    path.write_text("".join(json.dumps({"kind": "calibration", "id": f"x{i}", "config": c, "steps": n, "seed": s,
                                        "metrics": {"mAP": m, "NDS": m}, "seconds": 60.0, "sec_per_step": 0.5}) + "\n"
                            for i, (c, n, s, m) in enumerate(rows)))
    text = cal.report(path)
    voxel = text.split("### voxel suite")[1].split("###")[0]
    assert "| student | `bench/voxel_student` | 1200 | 2 | 0.3100 | 0.3100 | 0.50 | 1.0 |" in voxel
    assert "teacher mAP 0.4000, student 0.3100, gap +0.0900" in voxel
