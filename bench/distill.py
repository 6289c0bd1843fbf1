"""Distillation benchmark (v2): baseline students vs each method, paired seeds, equal steps.

For a suite (teacher, baseline student config, distillation configs) this script

1. trains the teacher once (or evaluates a trained one: ``--teacher-dir``),
2. trains the baseline student and every distilled student for ``--steps`` optimiser steps with
   seeds 0..S-1. A seed fixes the student's initial weights and the order and augmentation of the
   training batches for every arm (``kd3d.engine.data``; tested in
   ``tests/distill/test_bench_pairing.py``), so arm minus baseline at one seed is a paired difference,
3. evaluates each run on the validation split (and ``--heldout-root`` if given), and
4. appends one JSON line per finished run to the results file (default
   ``bench/results/distill_v2.jsonl``, see ``bench/runlog.py``), then regenerates the report
   (``bench/report.py``, which reads only that file) unless ``--no-report``.

Long runs survive interruption: a run already in the results file is skipped; a run is claimed
with a lock file in the work dir, so several workers (``--worker 0/2`` and ``--worker 1/2``, or
more processes started alike) share a suite without duplicating runs; every run checkpoints every
``--ckpt-every`` steps and a run whose worker died resumes from its last checkpoint (exactly: the
trainer's resume restores weights, optimiser, schedule and data position).

Suites::

    toy           the toy rig's teacher (16 ch) -> 8-channel student: FitNet+CWD, DistillBEV
                  (kd3d.testing's in-memory toy dataset; seconds; configs named ``toy/NAME`` are
                  kd3d/testing/toy_configs/NAME.py, not shipped experiments)
    synth-camera  synth/lidar_teacher -> synth/camera_student: BEVDistill, DistillBEV, UniDistill
    synth-lidar   synth/lidar_teacher -> synth/lidar_student_050: PointDistiller (SECOND setting)
    synth-lidar-025  synth/lidar_teacher -> synth/lidar_student_025: PointDistiller (SECOND setting)
    synth-pillar  synth/lidar_teacher_pillar -> synth/pillar_student_050: PointDistiller (PointPillars)
    synth-seg     synth/seg_teacher -> synth/seg_student_050: PVD

The data, steps and seeds of benchmark v2 are specified in ``docs/benchmark.md``; e.g.::

    python3 bench/distill.py --suite toy --seeds 3
    python3 bench/distill.py --suite synth-camera --seeds 5 --steps 1500 --worker 0/2 &
    python3 bench/distill.py --suite synth-camera --seeds 5 --steps 1500 --worker 1/2
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import runlog  # noqa: E402  (bench/runlog.py)

SUITES = {
    "toy": {"teacher": "toy/toy", "baseline": "toy/distill_fitnet",
            "methods": {"FitNet+CWD": "toy/distill_fitnet", "DistillBEV": "toy/distill_distillbev"},
            "metrics": ["ap"], "note": "engine's in-memory toy dataset (16 scenes, one class), centre-distance AP "
                                    "(kd3d.testing.toy); a check of the distillation pipeline, not a paper number"},
    "synth-camera": {"teacher": "synth/lidar_teacher", "baseline": "synth/camera_student",
                     "methods": {"BEVDistill": "synth/distill_bevdistill", "DistillBEV": "synth/distill_distillbev",
                                 "UniDistill": "synth/distill_unidistill"}, "metrics": ["mAP", "NDS"]},
    "synth-lidar": {"teacher": "synth/lidar_teacher", "baseline": "synth/lidar_student_050",
                    "methods": {"PointDistiller": "synth/distill_pointdistiller"}, "metrics": ["mAP", "NDS"]},
    "synth-lidar-025": {"teacher": "synth/lidar_teacher", "baseline": "synth/lidar_student_025",
                        "methods": {"PointDistiller": "synth/distill_pointdistiller_025"}, "metrics": ["mAP", "NDS"]},
    "synth-pillar": {"teacher": "synth/lidar_teacher_pillar", "baseline": "synth/pillar_student_050",
                     "methods": {"PointDistiller": "synth/distill_pointdistiller_pillar"}, "metrics": ["mAP", "NDS"]},
    "synth-seg": {"teacher": "synth/seg_teacher", "baseline": "synth/seg_student_050",
                  "methods": {"PVD": "synth/distill_pvd"}, "metrics": ["mIoU"]},
}
# benchmark v2 (docs/benchmark.md; configs/bench, data of bench/make_data_v2.sh): steps 0 = each
# config's calibrated optim.max_steps; teachers trained once in work_dirs/bench_v2/teachers and
# shared by the suites that use them (camera and voxel share bench/lidar_teacher)
V2_NOTE = "benchmark v2 data (bench/make_data_v2.sh): 256 train / 64 val key frames, targets with >= 1 LiDAR point"
SUITES.update({
    "camera": {"teacher": "bench/lidar_teacher", "baseline": "bench/camera_student",
               "methods": {"BEVDistill": "bench/camera_bevdistill", "DistillBEV": "bench/camera_distillbev",
                           "UniDistill": "bench/camera_unidistill"},
               "metrics": ["mAP", "NDS"], "seeds": 5, "steps": 0, "teacher_steps": 0, "v2": True, "note": V2_NOTE,
               # no v2 detection config augments in BEV, so a cached teacher sees exactly the live
               # teacher's input (tested): an arm costs a baseline step plus its terms, where a live
               # teacher adds its forward pass (about doubles a camera step); seg augments: live teacher
               "teacher_cache": True},
    "voxel": {"teacher": "bench/lidar_teacher", "baseline": "bench/voxel_student",
              "methods": {"PointDistiller": "bench/voxel_pointdistiller"},
              "metrics": ["mAP", "NDS"], "seeds": 3, "steps": 0, "teacher_steps": 0, "v2": True, "note": V2_NOTE,
              "teacher_cache": True},
    "pillar": {"teacher": "bench/pillar_teacher", "baseline": "bench/pillar_student",
               "methods": {"PointDistiller": "bench/pillar_pointdistiller"},
               "metrics": ["mAP", "NDS"], "seeds": 3, "steps": 0, "teacher_steps": 0, "v2": True, "note": V2_NOTE,
               "teacher_cache": True},
    "seg": {"teacher": "bench/seg_teacher", "baseline": "bench/seg_student", "methods": {"PVD": "bench/seg_pvd"},
            "metrics": ["mIoU"], "seeds": 3, "steps": 0, "teacher_steps": 0, "v2": True, "note": V2_NOTE},
})


DATA_ROOT = ""  # --data-root: replaces data.root of every config of a synth suite
THREADS = 1  # --threads: torch threads of every run (not part of a run's id)
BEV_AUGS = ("GlobalRotScaleTrans", "RandomFlip3D", "PointShuffle")  # change the teacher's input (or point order): no cache


def _load(name: str, sets: list[str] | None = None):
    """A suite's config by name; ``toy/NAME`` is the toy rig's ``kd3d/testing/toy_configs/NAME.py``."""
    from kd3d.engine.config import load_config

    if name.startswith("toy/"):
        from kd3d.testing import toy_config_path

        name = toy_config_path(name[len("toy/"):])
    return load_config(name, sets)


def _without_bev_aug(cfg):
    """``cfg`` with the BEV augmentations removed from its train transforms (image ones kept)."""
    tr = cfg.data.train_kwargs.get("transforms")
    if not tr:
        return cfg
    kept = [t for t in tr if t[0] not in BEV_AUGS]
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_kwargs={**cfg.data.train_kwargs,
                                                                                       "transforms": kept}))


def _quiet(cfg, *, seed: int, steps: int, ckpt_every: int) -> tuple[object, dict]:
    """``cfg`` for a bench run and the overrides applied (recorded in the results file)."""
    from kd3d.engine.config import override

    steps = steps or int(cfg.optim.max_steps)  # 0: the config's own (calibrated) budget
    rt = dataclasses.replace(cfg.runtime, progress=False, tensorboard=False, seed=seed, eval_interval=0, threads=THREADS,
                             ckpt_interval=max(1, min(ckpt_every, steps)), keep_checkpoints=2)
    values = {"optim.max_steps": steps}
    if DATA_ROOT and not cfg.data.dataset.startswith("kd3d.testing."):
        values["data.root"] = DATA_ROOT
    applied = {"runtime.seed": seed, **values}
    return override(dataclasses.replace(cfg, runtime=rt), values), applied


def _parse_arm(spec: str) -> tuple[str, str, dict[str, str]]:
    """'LABEL=CONFIG;k=v;k=v' -> (label, config, {k: v})."""
    label, sep, rest = spec.partition("=")
    parts = [x.strip() for x in rest.split(";") if x.strip()]
    if not sep or not label.strip() or not parts:
        raise SystemExit(f"bench/distill.py: --arm {spec!r}: expected LABEL=CONFIG[;key=value;...]")
    sets = {}
    for kv in parts[1:]:
        k, eq, v = kv.partition("=")
        if not eq:
            raise SystemExit(f"bench/distill.py: --arm {spec!r}: {kv!r} is not key=value")
        sets[k.strip()] = v.strip()
    return label.strip(), parts[0], sets




@dataclasses.dataclass
class Job:
    """One run of a suite: the teacher (``arm == 'teacher'``), the baseline or a distilled arm."""

    kind: str  # "teacher" | "run"
    arm: str
    seed: int
    config: str
    sets: dict  # --arm overrides (key -> value strings)


class Suite:
    """Builds, claims, runs and records the jobs of one suite invocation."""

    def __init__(self, name: str, suite: dict, args, methods: dict[str, str], arm_sets: dict[str, dict]):
        self.name, self.suite, self.args = name, suite, args
        self.methods, self.arm_sets = methods, arm_sets
        self.work = Path(args.work_dir)
        self.results = Path(args.results)
        if args.teacher_dir:
            self.teacher_dir = Path(args.teacher_dir)
        elif suite.get("v2"):  # calibrate.py's run of the teacher at this budget (seed 0), shared by the suites
            self.teacher_dir = _calibration_dir(self.teacher_identity())
        else:
            self.teacher_dir = self.work / "teacher"
        self.teacher_job = Job("teacher", "teacher", 0, suite["teacher"], {})
        self.labels = ["baseline"] + list(methods)
        # seeds outer, arms inner: every finished seed is a complete paired set early
        self.jobs = [self.teacher_job] + [
            Job("run", label, seed, suite["baseline"] if label == "baseline" else methods[label], arm_sets.get(label, {}))
            for seed in range(args.seeds) for label in self.labels]

    # -------------------------------------------------------------- identity and config
    def config(self, job: Job):
        """(config, overrides recorded, teacher identity or None) of ``job``."""
        from kd3d.engine.config import override

        steps = self.args.teacher_steps if job.kind == "teacher" else self.args.steps
        cfg, applied = _quiet(_load(job.config, [f"{k}={v}" for k, v in job.sets.items()]), seed=job.seed,
                              steps=steps, ckpt_every=self.args.ckpt_every)
        applied.update(job.sets)
        if job.kind == "teacher" and self.args.teacher_dir:
            applied["teacher_dir"] = str(self.args.teacher_dir)  # evaluated, not trained here
        teacher = None
        if job.kind == "run":
            if self.args.teacher_cache:  # every arm, baseline included, trains on the same (BEV-unaugmented) data
                cfg = _without_bev_aug(cfg)
                applied["teacher_cache"] = True
            if job.arm == "baseline":
                cfg = dataclasses.replace(cfg, distill=None)
                applied["distill"] = None
            else:
                teacher = self.teacher_identity()
                cfg = override(cfg, {"distill.teacher_checkpoint": str(self.teacher_dir)})
                if self.args.teacher_cache:  # one cache per method, shared by its seeds (fingerprinted)
                    cfg = override(cfg, {"distill.cache_dir": str(self.work / "cache" / job.arm)})
        return cfg, applied, teacher

    def teacher_identity(self) -> dict:
        """{"config", "steps"} of the suite's teacher (steps resolved: 0 -> the config's)."""
        if not hasattr(self, "_teacher_id"):
            steps = self.args.teacher_steps or int(_load(self.suite["teacher"]).optim.max_steps)
            self._teacher_id = {"config": self.suite["teacher"], "steps": steps}
        return self._teacher_id

    def ident(self, job: Job) -> tuple[str, dict]:
        """(id, info) of ``job``. A teacher's id names its config, not the suite: suites sharing a
        teacher (and its work dir) share its run."""
        cfg, applied, teacher = self.config(job)
        steps = int(cfg.optim.max_steps)
        group = f"teacher={job.config}" if job.kind == "teacher" else self.name
        rid = runlog.run_id(job.kind, group, job.arm, job.seed, steps, job.config, applied, teacher)
        return rid, {"cfg": cfg, "overrides": applied, "teacher": teacher, "steps": steps}

    def run_dir(self, job: Job) -> Path:
        """Checkpoints of ``job``: the teacher dir, or ``<work>/<arm>_s<seed>_<steps>``."""
        if job.kind == "teacher":
            return self.teacher_dir
        steps = self.args.steps or int(self.config(job)[0].optim.max_steps)
        return self.work / f"{job.arm}_s{job.seed}_{steps}"

    # -------------------------------------------------------------- running
    def obtain(self, job: Job, *, wait: bool = True) -> dict | None:
        """The job's record: from the results file, by running it (claimed), or -- with ``wait``
        -- once the worker holding its claim has written it (a dead worker's claim is taken over)."""
        rid, info = self.ident(job)
        locks = self.teacher_dir.parent / "locks" if job.kind == "teacher" else self.work / "locks"
        lock = locks / (rid.replace("/", "_").replace(":", "_") + ".lock")
        announced = False
        while True:
            rec = runlog.find(self.results, rid)
            if rec is not None:
                return rec
            if runlog.claim(lock):
                try:
                    rec = runlog.find(self.results, rid)  # written between our read and the claim
                    return rec if rec is not None else self._execute(job, rid, info)
                finally:
                    runlog.release(lock)
            if not wait:
                return None
            if not announced:
                print(f"waiting for {job.arm} seed {job.seed} (claimed by another worker: {lock})", flush=True)
                announced = True
            time.sleep(self.args.poll)

    def _execute(self, job: Job, rid: str, info: dict) -> dict:
        from kd3d.engine.config import config_to_json
        from kd3d.engine.trainer import Trainer
        from kd3d.models.checkpoint import latest_checkpoint

        cfg = info["cfg"]
        if job.kind == "run" and job.arm != "baseline":
            self.obtain(self.teacher_job)  # the teacher must exist before a distilled run starts
        work = self.run_dir(job)
        t0 = time.time()
        resumed_from = None
        if job.kind == "teacher" and self.suite.get("v2") and not self.args.teacher_dir:
            metrics = _calibrated_teacher(self.teacher_identity(), self.args.poll)  # trained by calibrate.py once
        elif job.kind == "teacher" and self.args.teacher_dir:  # trained elsewhere: evaluate, never retrain
            from kd3d.engine.trainer import evaluate

            ckpt = latest_checkpoint(work)
            if ckpt is None:
                raise SystemExit(f"bench/distill.py: --teacher-dir {work} holds no checkpoint")
            metrics = evaluate(cfg, ckpt, self.work / "teacher_eval")
        else:
            marker = work / "bench_run_id"  # which run the checkpoints in ``work`` belong to
            ckpt = latest_checkpoint(work) if marker.exists() and marker.read_text() == rid else None
            if ckpt is not None:  # an interrupted attempt of this very run: continue from its last checkpoint
                from kd3d.models.checkpoint import checkpoint_step

                resumed_from = checkpoint_step(ckpt)
                print(f"{job.arm} seed {job.seed}: resuming from {ckpt}", flush=True)
                trainer = Trainer(cfg, work, resume=True)
            else:  # the claim makes this worker the owner: leftovers of another run or attempt are cleared
                trainer = Trainer(cfg, work, overwrite=True)
                marker.write_text(rid)
            metrics = trainer.fit()
        rec = {"kind": job.kind, "id": rid, "suite": self.name, "arm": job.arm, "seed": job.seed,
               "steps": info["steps"], "config": job.config, "overrides": info["overrides"],
               "teacher": info["teacher"], "suite_teacher": self.teacher_identity(),
               "metrics": metrics, "metric_names": self.suite["metrics"],
               "config_sha256": hashlib.sha256(config_to_json(cfg).encode()).hexdigest()[:16],
               "seconds": round(time.time() - t0, 1), "resumed_from_step": resumed_from,
               "worker": self.args.worker, "pid": os.getpid(),
               "note": self.suite.get("note", "")}
        if self.args.heldout_root:
            rec["heldout"] = self._heldout(cfg, work)
        rec = runlog.append(self.results, rec)
        print(f"{job.arm:>14s} seed {job.seed}: {_short(metrics, self.suite['metrics'])} ({rec['seconds']} s)",
              flush=True)
        if self.args.commit_results:
            _git_commit_results(self.results, f"bench results: {rid}")
        return rec

    def _heldout(self, cfg, run_dir: Path) -> dict:
        """Metrics of ``run_dir``'s final checkpoint on ``--heldout-root``/``--heldout-split``."""
        from kd3d.engine.config import override
        from kd3d.engine.trainer import evaluate
        from kd3d.models.checkpoint import latest_checkpoint

        a = self.args
        ckpt = latest_checkpoint(run_dir)
        out = self.work / "heldout" / f"{run_dir.name}_{Path(a.heldout_root).name}_{a.heldout_split}"
        sets = {"data.root": str(a.heldout_root), **({"data.version": a.heldout_version} if a.heldout_version else {})}
        metrics = evaluate(override(cfg, sets), ckpt, out, split=a.heldout_split)
        return {"root": str(a.heldout_root), "split": a.heldout_split, "version": a.heldout_version, "metrics": metrics}

    def run(self, worker: tuple[int, int]) -> list[dict]:
        """This worker's share (round robin over the job list), then any job nobody claimed (a
        worker that died or was never started), then wait for the rest. Returns every record."""
        mine = [job for i, job in enumerate(self.jobs) if runlog.shard(i, worker)]
        needs_teacher = [job for job in mine if job.kind == "run" and job.arm != "baseline"]
        if self.obtain(self.teacher_job, wait=False) is None:  # teacher still training elsewhere: baselines first
            mine = [j for j in mine if j not in needs_teacher] + needs_teacher
        for job in mine:  # else seed by seed: every finished seed is a complete paired set
            self.obtain(job, wait=False)
        for job in self.jobs:
            self.obtain(job, wait=False)
        return [self.obtain(job) for job in self.jobs]


def _calibration_dir(teacher: dict) -> Path:
    """Work dir of ``bench/calibrate.py``'s run of ``teacher`` ({"config", "steps"}) with seed 0."""
    import calibrate  # bench/calibrate.py

    return calibrate.run_dir(Path(calibrate.DEFAULT_WORK_DIR), teacher["config"], teacher["steps"], 0)


def _calibrated_teacher(teacher: dict, poll: float) -> dict:
    """Val metrics of the v2 teacher: its record in ``bench/results/calibration.jsonl`` (the run at
    this budget, seed 0, one thread, the config's data), trained by ``bench/calibrate.py`` now if
    no worker has trained it yet; while another process trains it, wait for its record. A v2
    teacher is trained once, for the calibration curve and every suite that distils from it."""
    import calibrate  # bench/calibrate.py

    rid = calibrate.run_key(teacher["config"], teacher["steps"], 0, calibrate.key_sets())  # the defaults argv gives
    argv = ["--config", teacher["config"], "--steps", str(teacher["steps"]), "--seeds", "0", "--threads", "1"]
    announced = False
    while True:
        rec = runlog.find(calibrate.RESULTS, rid)
        if rec is not None:
            return rec["metrics"]
        calibrate.main(argv)  # trains it unless another process holds its claim
        if runlog.find(calibrate.RESULTS, rid) is None:
            if not announced:
                print(f"waiting for the teacher {teacher['config']} ({teacher['steps']} steps): "
                      f"bench/calibrate.py is training it in {_calibration_dir(teacher)}", flush=True)
                announced = True
            time.sleep(poll)


def _short(metrics: dict, names: list[str]) -> str:
    return ", ".join(f"{k} = {metrics.get(k, float('nan')):.4f}" for k in names)


def _git_commit_results(path: Path, message: str) -> None:
    """Commit the results file alone (``--commit-results``); a failure is printed, not fatal."""
    import subprocess

    rel = str(path.resolve().relative_to(ROOT))
    for cmd in (["git", "-C", str(ROOT), "add", rel], ["git", "-C", str(ROOT), "commit", "-q", "-m", message, "--", rel]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"bench/distill.py: {' '.join(cmd[3:])} failed: {proc.stderr.strip()[-300:]}", flush=True)
            return


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(SUITES), default="toy")
    p.add_argument("--seeds", type=int, default=None, help="seeds 0..S-1 (default: the suite's, else 3)")
    p.add_argument("--steps", type=int, default=None,
                   help="optimiser steps of every student run; 0 = the config's (default: v2 suites 0, others 64)")
    p.add_argument("--teacher-steps", type=int, default=None, help="0 = the config's (default: v2 suites 0, others 128)")
    p.add_argument("--teacher-dir", default="", help="evaluate the teacher in this work dir (latest checkpoint) "
                                                     "instead of training one")
    p.add_argument("--work-dir", default="", help="checkpoints, locks, caches (default work_dirs/bench_distill_SUITE)")
    p.add_argument("--results", default=str(runlog.DEFAULT_RESULTS),
                   help="results file: one JSON line per finished run (default %(default)s)")
    p.add_argument("--out", default=str(ROOT / "docs" / "results.md"), help="report regenerated from --results")
    p.add_argument("--no-report", action="store_true", help="do not regenerate --out at the end")
    p.add_argument("--data-root", default="", help="dataset root for the synth suites (default: the configs')")
    p.add_argument("--worker", default="0/1", help="I/N: this worker takes jobs I, I+N, ... first, then any "
                                                    "unclaimed job, then waits for the others (default 0/1)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per run (default 1: the benchmark's single-thread budget; runtime.threads' "
                        "auto rule reads a lagging load average and can start 2 threads beside a busy worker)")
    p.add_argument("--ckpt-every", type=int, default=100, help="checkpoint interval of every run (resume granularity)")
    p.add_argument("--poll", type=float, default=10.0, help="seconds between checks while waiting for another worker")
    p.add_argument("--commit-results", action="store_true", help="git-commit the results file after every run")
    p.add_argument("--teacher-cache", action=argparse.BooleanOptionalAction, default=None,
                   help="distilled runs read the teacher from a per-method cache (kd3d.distill.cache) instead of "
                        "running it every step; the BEV augmentations (%s) are then dropped from every arm's train "
                        "transforms, the baseline's too, so all arms see the same data (default: the suite's "
                        "choice: on for camera, voxel and pillar, whose configs have no BEV augmentation; off for seg)" % ", ".join(BEV_AUGS))
    p.add_argument("--heldout-root", default="",
                   help="also evaluate every final checkpoint (and the teacher) on this dataset root, e.g. a second "
                        "`kd3d synth` dataset with another --seed")
    p.add_argument("--heldout-split", default="mini_train", help="split of --heldout-root to evaluate on")
    p.add_argument("--heldout-version", default="", help="data.version of --heldout-root (default: the config's), "
                                                         "e.g. v1.0-mini for bench/make_data_v2.sh's held-out set")
    p.add_argument("--arm", action="append", default=[],
                   help="LABEL=CONFIG[;key=value;...]: a distilled arm with --set style overrides (repeat; replaces "
                        "the suite's methods), e.g. 'BEVDistill r0.25=synth/distill_bevdistill;distill.max_ratio=0.25'")
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    args.seeds = suite.get("seeds", 3) if args.seeds is None else args.seeds
    args.steps = suite.get("steps", 64) if args.steps is None else args.steps
    args.teacher_steps = suite.get("teacher_steps", 128) if args.teacher_steps is None else args.teacher_steps
    args.teacher_cache = suite.get("teacher_cache", False) if args.teacher_cache is None else args.teacher_cache
    args.work_dir = args.work_dir or str(ROOT / "work_dirs" / f"bench_distill_{args.suite}")
    global DATA_ROOT, THREADS
    DATA_ROOT, THREADS = args.data_root, args.threads
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    worker = runlog.parse_worker(args.worker)
    suite = SUITES[args.suite]
    Path(args.work_dir).mkdir(parents=True, exist_ok=True)
    methods, arm_sets = dict(suite["methods"]), {}
    if args.arm:  # the suite's methods replaced by explicit arms (config + --set style overrides)
        methods = {}
        for spec in args.arm:
            label, arm_cfg, sets = _parse_arm(spec)
            methods[label], arm_sets[label] = arm_cfg, sets
    try:
        records = Suite(args.suite, suite, args, methods, arm_sets).run(worker)
    except Exception:  # noqa: BLE001 -- name the suite, keep the traceback
        traceback.print_exc()
        print(f"bench/distill.py: suite {args.suite} failed; finished runs are in {args.results}", file=sys.stderr)
        return 1
    print(f"suite {args.suite}: {len(records)} runs in {args.results}", flush=True)
    if not args.no_report:
        import report  # bench/report.py

        default = Path(args.results).resolve() == runlog.DEFAULT_RESULTS.resolve()
        report.write(args.results, args.out, ROOT / "bench" / "results" / "calibration.jsonl" if default else None)
        print(f"report regenerated from {args.results} -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
