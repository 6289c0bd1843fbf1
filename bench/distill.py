"""Distillation benchmark: baseline students vs each method, several seeds, equal steps.

For a suite (teacher, baseline student config, distillation configs) this script

1. trains the teacher once (or reuses the checkpoint in its work dir),
2. trains the baseline student and every distilled student for ``--steps`` optimiser steps
   with seeds 0..S-1 (same data, schedule and step count; only ``distill`` differs),
3. evaluates each run on the validation split with the config's evaluator, and
4. writes a Markdown table (mean +- std over seeds, difference to the baseline, per-seed values)
   to ``--out`` (default ``docs/results.md``), plus every run's metrics as JSON lines in the
   work dir (finished runs are reused when the script is run again).

Suites::

    toy           the toy rig's teacher (16 ch) -> 8-channel student: FitNet+CWD, DistillBEV
                  (kd3d.testing's in-memory toy dataset; minutes on a laptop CPU; configs named
                  ``toy/NAME`` are kd3d/testing/toy_configs/NAME.py, not shipped experiments)
    synth-camera  synth/lidar_teacher -> synth/camera_student: BEVDistill, DistillBEV, UniDistill
    synth-lidar   synth/lidar_teacher -> synth/lidar_student_050: PointDistiller (SECOND setting)
    synth-lidar-025  synth/lidar_teacher -> synth/lidar_student_025: PointDistiller (SECOND setting)
    synth-pillar  synth/lidar_teacher_pillar -> synth/pillar_student_050: PointDistiller (PointPillars)
    synth-seg     synth/seg_teacher -> synth/seg_student_050: PVD

The synth suites need the generated dataset (``kd3d synth --format nuscenes --out
datasets/synth/nuscenes``) and are meant for a GPU; e.g.::

    python3 bench/distill.py --suite toy --seeds 3
    python3 bench/distill.py --suite synth-camera --seeds 3 --steps 2000 --teacher-steps 4000
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUITES = {
    "toy": {"teacher": "toy/toy", "baseline": "toy/distill_fitnet",
            "methods": {"FitNet+CWD": "toy/distill_fitnet", "DistillBEV": "toy/distill_distillbev"},
            "metric": "ap", "note": "engine's in-memory toy dataset (16 scenes, one class), centre-distance AP "
                                    "(kd3d.testing.toy); a check of the distillation pipeline, not a paper number"},
    "synth-camera": {"teacher": "synth/lidar_teacher", "baseline": "synth/camera_student",
                     "methods": {"BEVDistill": "synth/distill_bevdistill", "DistillBEV": "synth/distill_distillbev",
                                 "UniDistill": "synth/distill_unidistill"}, "metric": "NDS"},
    "synth-lidar": {"teacher": "synth/lidar_teacher", "baseline": "synth/lidar_student_050",
                    "methods": {"PointDistiller": "synth/distill_pointdistiller"}, "metric": "NDS"},
    "synth-lidar-025": {"teacher": "synth/lidar_teacher", "baseline": "synth/lidar_student_025",
                        "methods": {"PointDistiller": "synth/distill_pointdistiller_025"}, "metric": "NDS"},
    "synth-pillar": {"teacher": "synth/lidar_teacher_pillar", "baseline": "synth/pillar_student_050",
                     "methods": {"PointDistiller": "synth/distill_pointdistiller_pillar"}, "metric": "NDS"},
    "synth-seg": {"teacher": "synth/seg_teacher", "baseline": "synth/seg_student_050",
                  "methods": {"PVD": "synth/distill_pvd"}, "metric": "mIoU"},
}


DATA_ROOT = ""  # --data-root: replaces data.root of every config of a synth suite
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


def _quiet(cfg, *, seed: int, steps: int, ckpt: bool = True):
    from kd3d.engine.config import override

    rt = dataclasses.replace(cfg.runtime, progress=False, tensorboard=False, seed=seed, eval_interval=0,
                             ckpt_interval=steps if ckpt else 0)
    values = {"optim.max_steps": steps}
    if DATA_ROOT and not cfg.data.dataset.startswith("kd3d.testing."):
        values["data.root"] = DATA_ROOT
    return override(dataclasses.replace(cfg, runtime=rt), values)


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


def _find(log: Path, key: dict) -> dict | None:
    if log.exists():
        for line in log.read_text().splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            if all(rec.get(k) == v for k, v in key.items()):
                return rec
    return None


def _wait_for(log: Path, key: dict, what: str, poll: float = 10.0) -> dict:
    """Block until another worker (same --work-dir) has logged ``key``'s result."""
    announced = False
    while (rec := _find(log, key)) is None:
        if not announced:
            print(f"waiting for {what} (run by another worker)", flush=True)
            announced = True
        time.sleep(poll)
    return rec


def _claim(work: Path) -> bool:
    """Atomically claim a run for this worker (a lock file next to its work dir)."""
    work.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(str(work) + ".lock", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def _run(cfg, work: Path, log: Path, key: dict) -> dict | None:
    """Train + evaluate ``cfg`` in ``work`` unless ``log`` already holds ``key``'s result.

    Several workers may share one ``--work-dir`` (and log): a run claimed by another worker
    returns None here and is collected at the end."""
    from kd3d.engine.trainer import Trainer

    rec = _find(log, key)
    if rec is not None:
        return rec
    if not _claim(work):
        return None
    t0 = time.time()
    # the claim makes this worker the run's owner: checkpoints left by a crashed attempt are cleared
    metrics = Trainer(cfg, work, overwrite=True).fit()  # trains, saves the final checkpoint, evaluates
    rec = dict(key, metrics=metrics, seconds=round(time.time() - t0, 1))
    with log.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def _heldout(cfg, run_dir: Path, log: Path, key: dict, args, out: Path | None = None) -> dict | None:
    """Metrics of ``run_dir``'s final checkpoint on ``--heldout-root``/``--heldout-split`` (another
    generated dataset: unseen scenes, more frames than the val split, so less evaluation noise).
    Results are logged in ``log`` (claimed with a lock file like the training runs)."""
    from kd3d.engine.checkpoint import latest_checkpoint
    from kd3d.engine.config import override
    from kd3d.engine.trainer import evaluate

    key = dict(key, heldout_root=str(args.heldout_root), heldout_split=args.heldout_split)
    rec = _find(log, key)
    if rec is not None:
        return rec
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise SystemExit(f"bench/distill.py: no checkpoint in {run_dir} for the held-out evaluation")
    out = out or run_dir / f"heldout_{Path(args.heldout_root).name}_{args.heldout_split}"
    if not _claim(out):
        return None
    cfg = override(cfg, {"data.root": str(args.heldout_root)})
    rec = dict(key, metrics=evaluate(cfg, ckpt, out, split=args.heldout_split))
    with log.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return rec


def _teacher(suite: dict, args, log: Path) -> tuple[Path, dict | None]:
    """Train (or collect) the suite's teacher. Returns (work dir, record or None while another
    worker trains it)."""
    work = Path(args.teacher_dir or Path(args.work_dir) / "teacher")
    cfg = _quiet(_load(suite["teacher"]), seed=0, steps=args.teacher_steps)
    key = {"run": "teacher", "config": suite["teacher"], "steps": args.teacher_steps}
    if args.teacher_dir:  # a teacher trained elsewhere (e.g. by another suite): evaluate, never retrain
        from kd3d.engine.checkpoint import latest_checkpoint
        from kd3d.engine.trainer import evaluate

        rec = _find(log, key)
        if rec is not None:
            return work, rec
        while True:  # a bench worker may still be training it (lock file without "done")
            ckpt = latest_checkpoint(work)
            training = Path(str(work) + ".lock").exists() and not (work / "done").exists()
            if ckpt is not None and not training:
                break
            if ckpt is None and not training:
                raise SystemExit(f"bench/distill.py: --teacher-dir {work} holds no checkpoint and nobody trains it")
            print(f"waiting for the teacher in {work}", flush=True)
            time.sleep(30)
        rec = dict(key, metrics=evaluate(cfg, ckpt, work / "bench_eval"), seconds=0.0, checkpoint=str(ckpt))
        with log.open("a") as f:
            f.write(json.dumps(rec) + "\n")
        return work, rec
    rec = _run(cfg, work, log, key)
    if rec is not None:
        (work / "done").write_text(json.dumps(rec["metrics"]))
    return work, rec


def _fmt(values: list[float]) -> str:
    if not values:
        return "-"
    if any(v != v for v in values):  # NaN: the metric is missing from a run's results
        return "nan"
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.4f} +- {std:.4f}"


def _plot(path: Path, suite_name: str, metric: str, teacher: dict, rows: dict[str, list[dict]]) -> Path:
    """Bar chart: mean +- std of ``metric`` per student (per-seed values as dots), teacher dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(rows)
    vals = [[r["metrics"].get(metric, float("nan")) for r in rows[k]] for k in labels]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(labels), 3.2), dpi=120)
    means = [statistics.fmean(v) for v in vals]
    stds = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in vals]
    ax.bar(range(len(labels)), means, yerr=stds, capsize=4, color=["#888888"] + ["#3b7dd8"] * (len(labels) - 1))
    for i, v in enumerate(vals):
        ax.scatter([i] * len(v), v, color="black", s=10, zorder=3)
    t = teacher["metrics"].get(metric, float("nan"))
    ax.axhline(t, color="#d83b3b", linestyle="--", label=f"teacher {t:.3f}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(metric)
    ax.set_title(f"suite {suite_name}")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _table(rows: dict[str, list[dict]], teacher: dict, metric: str, second: str | None) -> list[str]:
    """Markdown table: mean +- std, difference to the baseline, the share of the baseline->teacher
    gap recovered, per-seed values (and the second metric, e.g. mAP next to NDS)."""
    def vals(recs, m):
        return [r["metrics"].get(m, float("nan")) for r in recs]

    base, t = vals(rows["baseline"], metric), teacher["metrics"].get(metric, float("nan"))
    lines = [f"| student | {metric} (mean +- std) | diff to baseline | gap recovered | per seed |"
             + (f" {second} (mean +- std) | {second} diff | {second} gap recovered |" if second else ""),
             "|---|---|---|---|---|" + ("---|---|---|" if second else "")]

    def diff_cols(v, b, tv, is_base):
        if is_base:
            return "-", "-"
        d = statistics.fmean(v) - statistics.fmean(b)
        gap = tv - statistics.fmean(b)
        return f"{d:+.4f}", (f"{100 * d / gap:+.0f} %" if gap > 0 else "-")

    for label, recs in rows.items():
        v = vals(recs, metric)
        d, g = diff_cols(v, base, t, label == "baseline")
        line = f"| {label} | {_fmt(v)} | {d} | {g} | {', '.join(f'{x:.4f}' for x in v)} |"
        if second:
            v2, b2 = vals(recs, second), vals(rows["baseline"], second)
            d2, g2 = diff_cols(v2, b2, teacher["metrics"].get(second, float("nan")), label == "baseline")
            line += f" {_fmt(v2)} | {d2} | {g2} |"
        lines.append(line)
    lines.append(f"| teacher | {t:.4f} | | | |" + (f" {teacher['metrics'].get(second, float('nan')):.4f} | | |"
                                                    if second else ""))
    return lines


def write_report(path: Path, suite_name: str, suite: dict, args, teacher: dict, rows: dict[str, list[dict]],
                 heldout: dict | None = None) -> str:
    import torch

    metric = suite["metric"]
    second = {"NDS": "mAP"}.get(metric)  # also report mAP next to NDS
    base = [r["metrics"].get(metric, float("nan")) for r in rows["baseline"]]
    lines = [f"## Distillation benchmark: suite `{suite_name}`", "",
             f"Command: `python3 bench/distill.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; machine: {platform.machine()}, "
             f"torch {torch.__version__}, device {'cuda' if torch.cuda.is_available() else 'cpu'}  ",
             f"Every student: {args.steps} optimiser steps, seeds {list(range(args.seeds))}; "
             f"teacher `{suite['teacher']}` ({args.teacher_steps} steps): {metric} = "
             f"{teacher['metrics'].get(metric, float('nan')):.4f}  ",
             *([f"Teacher cache on (`--teacher-cache`): distilled runs replay the teacher's stored features; "
                f"every arm, the baseline too, trains without the BEV augmentations {', '.join(BEV_AUGS)}  "]
               if getattr(args, "teacher_cache", False) else []),
             f"Data: {suite.get('note', 'generated synthetic nuScenes (kd3d synth) at ' + (args.data_root or 'the configs root') + ', val split')}", "",
             ""]
    lines += _table(rows, teacher, metric, second)
    plot = _plot(path.parent / f"results_{suite_name}.png", suite_name, metric, teacher, rows)
    lines += ["", f"![{suite_name}: {metric} per student, mean and std over seeds, teacher dashed]({plot.name})"]
    if heldout is not None:
        n = heldout.get("frames")
        lines += ["", f"Held-out evaluation (`--heldout-root {args.heldout_root} --heldout-split {args.heldout_split}`: "
                      f"another generated dataset, scenes unseen in training{f', {n} key frames' if n else ''}), "
                      "same checkpoints:", ""]
        lines += _table(heldout["rows"], heldout["teacher"], metric, second)
        hplot = _plot(path.parent / f"results_{suite_name}_heldout.png", suite_name + " (held-out)", metric,
                      heldout["teacher"], heldout["rows"])
        lines += ["", f"![{suite_name}, held-out: {metric} per student]({hplot.name})"]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text() if path.exists() else "# kd3d results\n\nWritten by `bench/distill.py`.\n"
    marker = f"## Distillation benchmark: suite `{suite_name}`"
    if marker in old:  # replace this suite's section, keep the others
        head, _, rest = old.partition(marker)
        nxt = rest.find("\n## ")
        old = head.rstrip() + "\n" + (rest[nxt:] if nxt >= 0 else "")
    path.write_text(old.rstrip() + "\n\n" + text)
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=sorted(SUITES), default="toy")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=64, help="optimiser steps of every student run")
    p.add_argument("--teacher-steps", type=int, default=128)
    p.add_argument("--teacher-dir", default="", help="reuse this teacher work dir (latest checkpoint)")
    p.add_argument("--work-dir", default="")
    p.add_argument("--out", default=str(ROOT / "docs" / "results.md"))
    p.add_argument("--data-root", default="", help="dataset root for the synth suites (default: the configs')")
    p.add_argument("--worker", choices=("teacher-first", "baselines-first"), default="teacher-first",
                   help="run two workers on one --work-dir to use two cores: one 'teacher-first' (teacher, "
                        "then baselines and methods), one 'baselines-first' (baselines, then methods from the "
                        "last); runs are claimed with lock files and the report waits for both")
    p.add_argument("--teacher-cache", action="store_true",
                   help="distilled runs read the teacher from a per-method cache (kd3d.distill.cache) instead of "
                        "running it every step; the BEV augmentations (%s) are then dropped from every arm's train "
                        "transforms, the baseline's too, so all arms see the same data" % ", ".join(BEV_AUGS))
    p.add_argument("--heldout-root", default="",
                   help="also evaluate every final checkpoint (and the teacher) on this dataset root, e.g. a second "
                        "`kd3d synth` dataset with another --seed: more, unseen frames -> less evaluation noise")
    p.add_argument("--heldout-split", default="mini_train", help="split of --heldout-root to evaluate on")
    p.add_argument("--arm", action="append", default=[],
                   help="LABEL=CONFIG[;key=value;...]: a distilled arm with --set style overrides (repeat; replaces "
                        "the suite's methods), e.g. 'BEVDistill r0.25=synth/distill_bevdistill;distill.max_ratio=0.25'")
    args = p.parse_args(argv)
    global DATA_ROOT
    DATA_ROOT = args.data_root
    from kd3d.engine.config import override

    suite = SUITES[args.suite]
    args.work_dir = args.work_dir or str(ROOT / "work_dirs" / f"bench_distill_{args.suite}")
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "runs.jsonl"
    methods = dict(suite["methods"])
    arm_sets: dict[str, dict] = {}
    if args.arm:  # the suite's methods replaced by explicit arms (config + --set style overrides)
        methods = {}
        for spec in args.arm:
            label, arm_cfg, sets = _parse_arm(spec)
            methods[label] = arm_cfg
            arm_sets[label] = sets
    labels = ["baseline"] + list(methods)
    configs = {"baseline": suite["baseline"], **methods}
    jobs = [(label, seed) for label in labels for seed in range(args.seeds)]
    teacher_dir = Path(args.teacher_dir or work / "teacher")
    teacher = None
    if args.worker == "teacher-first":
        teacher_dir, teacher = _teacher(suite, args, log)
    else:  # baselines first (no teacher needed), then the methods from the last one backwards
        jobs = [j for j in jobs if j[0] == "baseline"] + [j for j in reversed(jobs) if j[0] != "baseline"]
    def run_key(label: str, seed: int) -> dict:
        """The identity of a run in runs.jsonl / heldout.jsonl."""
        key = {"run": label, "config": configs[label], "seed": seed, "steps": args.steps,
               "teacher_steps": args.teacher_steps}
        if arm_sets.get(label):
            key["set"] = arm_sets[label]
        if args.teacher_cache:
            key["teacher_cache"] = True
        return key

    def arm_config(label: str, seed: int):
        return _quiet(_load(configs[label], [f"{k}={v}" for k, v in arm_sets.get(label, {}).items()]),
                      seed=seed, steps=args.steps, ckpt=False)

    def get_teacher():  # train/evaluate the teacher here, or wait for the worker doing it
        t_dir, rec = _teacher(suite, args, log)
        return t_dir, rec or _wait_for(log, {"run": "teacher", "config": suite["teacher"],
                                             "steps": args.teacher_steps}, "the teacher")

    results: dict[tuple, dict] = {}
    for label, seed in jobs:
        key = run_key(label, seed)
        cfg = arm_config(label, seed)
        if args.teacher_cache:  # every arm, baseline included, trains on the same (BEV-unaugmented) data
            cfg = _without_bev_aug(cfg)
        if label == "baseline":
            cfg = dataclasses.replace(cfg, distill=None)
        else:
            if teacher is None:
                teacher_dir, teacher = get_teacher()
            cfg = override(cfg, {"distill.teacher_checkpoint": str(teacher_dir)})
            if args.teacher_cache:  # one cache per method, shared by its seeds (fingerprinted)
                cfg = override(cfg, {"distill.cache_dir": str(work / "cache" / label)})
        rec = _run(cfg, work / f"{label}_s{seed}", log, key)
        if rec is not None:
            results[(label, seed)] = rec
            print(f"{label:>14s} seed {seed}: {suite['metric']} = {rec['metrics'].get(suite['metric'])} "
                  f"({rec['seconds']} s)", flush=True)
    if teacher is None:
        teacher_dir, teacher = get_teacher()
    print(f"teacher {suite['teacher']}: {teacher['metrics']}", flush=True)
    rows: dict[str, list[dict]] = {label: [] for label in labels}
    for label in labels:
        for seed in range(args.seeds):
            rows[label].append(results.get((label, seed)) or _wait_for(log, run_key(label, seed), f"{label} seed {seed}"))
    heldout = None
    if args.heldout_root:
        hlog = work / "heldout.jsonl"
        pending: list[tuple] = []
        tkey = {"run": "teacher", "config": suite["teacher"], "steps": args.teacher_steps}
        tcfg = _quiet(_load(suite["teacher"]), seed=0, steps=args.teacher_steps)
        # the teacher's evaluation (and its lock) live in this suite's work dir: a teacher dir is
        # shared between suites, whose held-out logs are separate
        jobs_h = [("teacher", None, tcfg, teacher_dir, tkey)]
        for label in labels:
            for seed in range(args.seeds):
                jobs_h.append((label, seed, arm_config(label, seed), work / f"{label}_s{seed}", run_key(label, seed)))
        if args.worker == "baselines-first":
            jobs_h.reverse()
        got: dict = {}
        for label, seed, cfg, run_dir, key in jobs_h:
            out = work / f"teacher_heldout_{Path(args.heldout_root).name}_{args.heldout_split}" \
                if label == "teacher" else None
            rec = _heldout(cfg, run_dir, hlog, key, args, out=out)
            if rec is None:
                pending.append((label, seed, key))
            else:
                got[(label, seed)] = rec
        for label, seed, key in pending:
            hkey = dict(key, heldout_root=str(args.heldout_root), heldout_split=args.heldout_split)
            got[(label, seed)] = _wait_for(hlog, hkey, f"held-out evaluation of {label} seed {seed}")
        heldout = {"teacher": got[("teacher", None)],
                   "rows": {label: [got[(label, s)] for s in range(args.seeds)] for label in labels}}
    print(write_report(Path(args.out), args.suite, suite, args, teacher, rows, heldout=heldout))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
