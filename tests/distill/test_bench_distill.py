"""bench/distill.py end to end on the toy suite (2 steps per run): teacher, baseline and every
method trained, evaluated, a results table written and finished runs reused."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_distill", ROOT / "bench" / "distill.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_toy_suite_writes_table_and_reuses_runs(tmp_path):
    bench = _bench()
    out = tmp_path / "results.md"
    args = ["--suite", "toy", "--seeds", "1", "--steps", "2", "--teacher-steps", "2", "--work-dir",
            str(tmp_path / "work"), "--out", str(out)]
    assert bench.main(args) == 0
    text = out.read_text()
    assert "suite `toy`" in text
    for label in ("baseline", "FitNet+CWD", "DistillBEV"):
        assert f"| {label} |" in text
    runs = [json.loads(x) for x in (tmp_path / "work" / "runs.jsonl").read_text().splitlines()]
    assert [r["run"] for r in runs] == ["teacher", "baseline", "FitNet+CWD", "DistillBEV"]
    assert all("ap" in r["metrics"] for r in runs)
    assert bench.main(args) == 0  # second call: every run comes from runs.jsonl
    assert len((tmp_path / "work" / "runs.jsonl").read_text().splitlines()) == 4
    assert out.read_text().count("suite `toy`") == 1  # the section is replaced, not appended
    assert (tmp_path / "results_toy.png").stat().st_size > 1000  # the plot beside the table
    assert "gap recovered" in text and "| teacher |" in text
    # held-out evaluation of the same checkpoints (toy: any non-train split is a fresh sample set)
    assert bench.main(args + ["--heldout-root", str(tmp_path / "unused"), "--heldout-split", "heldout"]) == 0
    held = [json.loads(x) for x in (tmp_path / "work" / "heldout.jsonl").read_text().splitlines()]
    assert sorted(r["run"] for r in held) == sorted(["teacher", "baseline", "FitNet+CWD", "DistillBEV"])
    assert all(r["heldout_split"] == "heldout" and "ap" in r["metrics"] for r in held)
    text = out.read_text()
    assert "Held-out evaluation" in text and text.count("| DistillBEV |") == 2
    assert (tmp_path / "results_toy_heldout.png").stat().st_size > 1000
    # a second suite work dir sharing the teacher: its held-out evaluation of the teacher is its own
    # (a lock left in the teacher dir by the first suite must not make it wait forever)
    import subprocess
    import sys

    args2 = ["--suite", "toy", "--seeds", "1", "--steps", "2", "--teacher-steps", "2", "--work-dir",
             str(tmp_path / "work2"), "--out", str(tmp_path / "r2.md"), "--teacher-dir", str(tmp_path / "work" / "teacher"),
             "--heldout-root", str(tmp_path / "unused"), "--heldout-split", "heldout"]
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "distill.py"), *args2], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    held2 = [json.loads(x) for x in (tmp_path / "work2" / "heldout.jsonl").read_text().splitlines()]
    assert "teacher" in [r["run"] for r in held2]


def test_two_workers_share_runs_without_duplicates(tmp_path):
    """Two workers on one --work-dir (teacher-first + baselines-first) claim runs with lock files:
    every run is trained exactly once and both write the same complete table."""
    import subprocess
    import sys

    common = ["--suite", "toy", "--seeds", "2", "--steps", "2", "--teacher-steps", "2", "--work-dir",
              str(tmp_path / "work")]
    procs = [
        subprocess.Popen([sys.executable, str(ROOT / "bench" / "distill.py"), *common, "--worker", worker,
                          "--out", str(tmp_path / f"{worker}.md")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
        for worker in ("teacher-first", "baselines-first")
    ]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out
    runs = [json.loads(x) for x in (tmp_path / "work" / "runs.jsonl").read_text().splitlines()]
    keys = [(r["run"], r.get("seed")) for r in runs]
    assert len(keys) == len(set(keys)) == 1 + 3 * 2  # teacher + (baseline, 2 methods) x 2 seeds
    tables = [(tmp_path / f"{w}.md").read_text().split("| student |")[1] for w in ("teacher-first", "baselines-first")]
    assert tables[0] == tables[1]


def test_parse_arm_spec():
    import pytest

    mod = _bench()
    assert mod._parse_arm("BEVDistill r0.25=synth/distill_bevdistill;distill.max_ratio=0.25; distill.warmup_steps=100") == (
        "BEVDistill r0.25", "synth/distill_bevdistill", {"distill.max_ratio": "0.25", "distill.warmup_steps": "100"})
    assert mod._parse_arm("PVD=synth/distill_pvd") == ("PVD", "synth/distill_pvd", {})
    for bad in ("no-equals", "X=", "X=cfg;novalue"):
        with pytest.raises(SystemExit, match="--arm"):
            mod._parse_arm(bad)
