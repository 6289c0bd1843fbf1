"""Calibration curves of benchmark v2 (issue 12 item 1): val metric against training steps for
every suite's teacher and baseline student (configs/bench/), so the budgets used by
``bench/distill.py`` are chosen from measurements.

Usage::

    bench/make_data_v2.sh                                   # the data (datasets/bench_v2)
    python3 bench/calibrate.py --list                       # the grid: done / to do
    python3 bench/calibrate.py --suite camera --role student --steps 1500 --seeds 0
    python3 bench/calibrate.py                              # the whole planned grid
    python3 bench/calibrate.py --worker 1/2                 # a second worker shares the grid
    python3 bench/calibrate.py --report                     # tables from the results file
    python3 bench/calibrate.py --config synth/camera_student --steps 300,900   # any config's curve

Each point is its own training run with the one-cycle schedule stretched to its length (the
metric a run of that budget reaches, not an intermediate checkpoint of a longer run). Every
finished run appends one JSON line to ``bench/results/calibration.jsonl`` (commit it as runs
come in)::

    {"kind": "calibration", "id", "config", "role", "steps", "seed", "threads", "metrics",
     "seconds" (train + final val evaluation, wall), "sec_per_step" (median of the logged
     training intervals), "data_root", "commit", "date", "host"}

A run whose id is in the file is skipped (a teacher shared by two suites runs once); a run is
claimed with a lock file, so workers (``--worker i/n``) share the grid, and a run interrupted
mid-way resumes from its last checkpoint. Runs use ``--threads`` torch threads (default 1, the
issue's single-thread budget) under ``nice``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runlog  # noqa: E402  (bench/runlog.py: append/claim/find shared with bench/distill.py)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "calibration.jsonl"
DEFAULT_WORK_DIR = ROOT / "work_dirs" / "bench_calibration"

# suite -> teacher/student configs, metric names (first = the calibration criterion) and the
# curve points (steps). The planned budget is each config's optim.max_steps (run first).
SUITES = {
    "camera": {"teacher": "bench/lidar_teacher", "student": "bench/camera_student", "metrics": ["mAP", "NDS"],
               "teacher_steps": [300, 600, 1200], "student_steps": [500, 1000, 1500, 2500]},
    "voxel": {"teacher": "bench/lidar_teacher", "student": "bench/voxel_student", "metrics": ["mAP", "NDS"],
              "teacher_steps": [300, 600, 1200], "student_steps": [300, 600, 1200]},
    "pillar": {"teacher": "bench/pillar_teacher", "student": "bench/pillar_student", "metrics": ["mAP", "NDS"],
               "teacher_steps": [300, 600, 1200], "student_steps": [300, 600, 1200]},
    "seg": {"teacher": "bench/seg_teacher", "student": "bench/seg_student", "metrics": ["mIoU"],
            "teacher_steps": [150, 300, 600], "student_steps": [150, 300, 600]},
}
# what the issue asks of each suite at the planned budget
CRITERIA = {"camera": "student mAP >= 0.15 in about 20 single-thread CPU minutes",
            "voxel": "teacher mAP - student mAP >= 0.05", "pillar": "teacher mAP - student mAP >= 0.05",
            "seg": "teacher mIoU - student mIoU >= 0.05"}


def planned_steps(config: str) -> int:
    from kd3d.engine.config import load_config

    return int(load_config(config).optim.max_steps)


def key_sets(data_root: str = "", threads: int = 1) -> dict:
    """The run settings that enter a calibration run's id (besides config, steps and seed)."""
    return {"data_root": data_root, "threads": threads}


def run_key(config: str, steps: int, seed: int, sets: dict) -> str:
    blob = json.dumps({"config": config, "sets": sets}, sort_keys=True)
    return f"calibration:{config}/{steps}/s{seed}/{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def grid(suites: list[str], roles: list[str], steps: list[int] | None, seeds: list[int]) -> list[dict]:
    """Jobs (config, role, steps, seed): planned budgets first, then the other curve points by steps."""
    jobs, seen = [], set()
    for name in suites:
        s = SUITES[name]
        for role in roles:
            config = s[role]
            points = steps or s[f"{role}_steps"]
            plan = planned_steps(config)
            ordered = ([plan] if plan in points else []) + sorted(p for p in points if p != plan)
            for p in ordered:
                for seed in seeds:
                    if (config, p, seed) not in seen:
                        seen.add((config, p, seed))
                        jobs.append({"config": config, "role": role, "steps": p, "seed": seed, "plan": p == plan})
    jobs.sort(key=lambda j: (not j["plan"], j["steps"]))
    return jobs


def _sec_per_step(run_dir: Path) -> float | None:
    path = run_dir / "train.csv"
    if not path.is_file():
        return None
    with path.open() as f:
        vals = [float(r["sec_per_step"]) for r in csv.DictReader(f) if r.get("sec_per_step")]
    return statistics.median(vals) if vals else None


def run_dir(work_dir: Path, config: str, steps: int, seed: int) -> Path:
    """The work dir of one calibration run (``bench/distill.py`` reads v2 teachers from here)."""
    tag = Path(config).stem if config.endswith(".py") else config.replace("/", "_")
    return Path(work_dir) / tag / f"steps{steps}_s{seed}"


def execute(job: dict, args) -> dict:
    """Train (or resume) the job's run and return its record (not yet appended)."""
    run_dir_ = run_dir(args.work_dir, job["config"], job["steps"], job["seed"])
    sets = [f"optim.max_steps={job['steps']}", f"runtime.seed={job['seed']}", "runtime.progress=false",
            "runtime.tensorboard=false", f"runtime.ckpt_interval={max(50, job['steps'] // 10)}",
            "runtime.keep_checkpoints=1"]
    if args.data_root:
        sets.append(f"data.root={args.data_root}")
    ckpts = sorted((run_dir_ / "checkpoints").glob("ckpt_step*.pth"))
    cmd = ["nice", "-n", str(args.nice), sys.executable, "-m", "kd3d.cli.main", "train", job["config"],
           "--work-dir", str(run_dir_)] + [a for s in sets for a in ("--set", s)]
    cmd += ["--resume"] if ckpts else ["--overwrite"]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    run_dir_.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with (run_dir_ / "calibrate.log").open("a") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    if rc != 0:
        raise RuntimeError(f"{job['config']} {job['steps']} steps seed {job['seed']}: kd3d train exited {rc}; "
                           f"see {run_dir_ / 'calibrate.log'}")
    metrics = json.loads((run_dir_ / "metrics.json").read_text())
    return {"kind": "calibration", "config": job["config"], "role": job["role"], "steps": job["steps"],
            "seed": job["seed"], "threads": args.threads, "metrics": metrics,
            "seconds": round(time.time() - t0, 1), "sec_per_step": _sec_per_step(run_dir_),
            "data_root": args.data_root or "config", "resumed": bool(ckpts)}


def _metric(rec: dict, name: str) -> float | None:
    m = rec.get("metrics", {})
    for key in (name, f"val/{name}", f"nuscenes/{name}"):
        if isinstance(m.get(key), (int, float)):
            return float(m[key])
    return None


def report(path: Path = RESULTS) -> str:
    """Markdown: per suite the teacher and student curves (mean over seeds) and the criterion
    at the planned budget."""
    recs = [r for r in runlog.read_records(path) if r.get("kind") == "calibration"]
    lines = [f"Calibration runs from `{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}` "
             f"({len(recs)} runs).", ""]
    for name, s in SUITES.items():
        lines += [f"### {name} suite ({CRITERIA[name]})", "",
                  "| role | config | steps | seeds | " + " | ".join(s["metrics"]) + " | s/step | minutes |",
                  "|---|---|---|---|" + "---|" * (len(s["metrics"]) + 2)]
        best = {}
        for role in ("teacher", "student"):
            rows = [r for r in recs if r["config"] == s[role]]
            for steps in sorted({r["steps"] for r in rows}):
                at = [r for r in rows if r["steps"] == steps]
                vals = [[_metric(r, m) for r in at] for m in s["metrics"]]
                means = [statistics.mean([v for v in vs if v is not None]) if any(v is not None for v in vs)
                         else None for vs in vals]
                sps = [r["sec_per_step"] for r in at if r.get("sec_per_step")]
                cells = [f"{m:.4f}" if m is not None else "" for m in means]
                lines.append(f"| {role} | `{s[role]}` | {steps} | {len(at)} | " + " | ".join(cells) +
                             f" | {statistics.mean(sps):.2f} | {statistics.mean(r['seconds'] for r in at) / 60:.1f} |"
                             if sps else f"| {role} | `{s[role]}` | {steps} | {len(at)} | " + " | ".join(cells) + " | | |")
                if steps == planned_steps(s[role]):
                    best[role] = means[0]
        t, st = best.get("teacher"), best.get("student")
        if t is not None and st is not None:
            lines += ["", f"At the planned budgets: teacher {s['metrics'][0]} {t:.4f}, student {st:.4f}, "
                          f"gap {t - st:+.4f}."]
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", action="append", choices=sorted(SUITES), help="suite(s) (default: all)")
    p.add_argument("--role", action="append", choices=("teacher", "student"), help="default: both")
    p.add_argument("--config", action="append", help="calibrate these configs (names or .py paths) instead of the suites")
    p.add_argument("--steps", default="", help="comma-separated step budgets (default: the suite's curve points)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--nice", type=int, default=10, help="niceness of the training processes (default 10)")
    p.add_argument("--data-root", default="", help="replace data.root of the configs")
    p.add_argument("--work-dir", default=str(DEFAULT_WORK_DIR))
    p.add_argument("--results", default=str(RESULTS), help="results file (default bench/results/calibration.jsonl)")
    p.add_argument("--worker", default="0/1", help="I/N: this worker's round-robin share of the grid")
    p.add_argument("--list", action="store_true", help="print the grid with done / to do and exit")
    p.add_argument("--report", action="store_true", help="print the calibration tables and exit")
    args = p.parse_args(argv)
    results = Path(args.results)
    if args.report:
        print(report(results))
        return 0
    steps = [int(x) for x in args.steps.split(",") if x.strip()] or None
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    if args.config:
        if not steps:
            raise SystemExit("bench/calibrate.py: --config needs --steps (the curve points)")
        jobs = [{"config": c, "role": "config", "steps": n, "seed": s, "plan": False}
                for c in args.config for n in steps for s in seeds]
    else:
        jobs = grid(args.suite or list(SUITES), args.role or ["teacher", "student"], steps, seeds)
    sets = key_sets(args.data_root, args.threads)
    worker = runlog.parse_worker(args.worker)
    for i, job in enumerate(jobs):
        rid = run_key(job["config"], job["steps"], job["seed"], sets)
        done = runlog.find(results, rid)
        if args.list:
            state = "done" if done else "to do"
            print(f"{state:6s} {job['config']:24s} {job['steps']:5d} steps seed {job['seed']}"
                  f"{' (planned budget)' if job['plan'] else ''}")
            continue
        if done or not runlog.shard(i, worker):
            continue
        lock = Path(args.work_dir) / "locks" / (rid.replace("/", "_").replace(":", "_") + ".lock")
        if not runlog.claim(lock):
            print(f"skip {rid}: claimed by another worker", flush=True)
            continue
        try:
            if runlog.find(results, rid):
                continue
            print(f"run {job['config']} {job['steps']} steps seed {job['seed']}", flush=True)
            rec = runlog.append(results, dict(execute(job, args), id=rid))
            print(f"done {rid}: {json.dumps({k: v for k, v in rec['metrics'].items() if isinstance(v, float)})[:300]}",
                  flush=True)
        finally:
            runlog.release(lock)
    return 0


if __name__ == "__main__":
    sys.exit(main())
