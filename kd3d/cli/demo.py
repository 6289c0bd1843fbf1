"""``kd3d demo``: kd3d's main job end to end on an embedded default.

Stages (all by default, each can be chosen with ``--stages``):

``data``     generate a small synthetic dataset in the real nuScenes format, load it through
             kd3d's loaders, print a summary and write pictures (BEV + 3D view, camera grid)
``train``    train a small LiDAR teacher and a camera BEV student on it and print their
             nuScenes metrics
``distill``  distil a camera student from the LiDAR teacher and print baseline vs distilled

The models are the calibrated benchmark recipe (``configs/bench/``: one 3x3 conv per camera head
branch, training targets restricted to boxes with >= 1 LiDAR point), shortened to fit about 10
minutes on a 2-core CPU: fewer frames (48 training key frames instead of 256) and fewer steps
(the benchmark trains the camera student 1500 steps and the teacher 1200); the demo prints what
it shortened.

Every stage writes under ``--out`` (default ``demo_out/``) and re-uses what an earlier run
finished (training resumes from its last checkpoint), so the command is idempotent.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import time
from pathlib import Path

STAGES = ("data", "train", "distill")
# the calibrated benchmark recipe (configs/bench/); the demo shortens frames and steps
TEACHER, STUDENT = "bench/lidar_teacher", "bench/camera_student"
METHODS = {m: f"bench/camera_{m}" for m in ("bevdistill", "distillbev", "unidistill")}
SWEEPS = 3  # LiDAR sweeps per key frame the configs load (generating 9 costs time for nothing)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo_out", help="output folder (default: demo_out)")
    parser.add_argument("--stages", default=",".join(STAGES),
                        help=f"comma-separated stages to run, of {', '.join(STAGES)} (default: all)")
    parser.add_argument("--scenes", type=int, default=10, help="synthetic scenes (v1.0-mini names: 8 train, 2 val)")
    parser.add_argument("--samples-per-scene", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--teacher-steps", type=int, default=200,
                        help="LiDAR teacher optimiser steps (benchmark: 1200)")
    parser.add_argument("--student-steps", type=int, default=300,
                        help="camera student optimiser steps, baseline and distilled (benchmark: 1500)")
    parser.add_argument("--method", default="bevdistill",
                        choices=("bevdistill", "distillbev", "unidistill"),
                        help="cross-modal distiller for the distill stage")


def _stages(text: str) -> list[str]:
    stages = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise SystemExit(f"kd3d demo: unknown stage(s) {unknown}; expected a subset of {list(STAGES)}")
    return stages


def _banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def stage_data(args, out: Path) -> Path:
    from kd3d.cli.info import format_summary, summarize
    from kd3d.data.nuscenes import NuScenesDataset
    from kd3d.data.synth import generate_nuscenes
    from kd3d.vis._raster import save_png
    from kd3d.vis.bev import render_scene
    from kd3d.vis.camera import render_cameras

    root = out / "nuscenes"
    marker = root / "kd3d_demo_done.json"
    want = {"scenes": args.scenes, "samples_per_scene": args.samples_per_scene, "seed": args.seed, "sweeps": SWEEPS}
    _banner("data: synthetic nuScenes-format dataset")
    if marker.exists() and json.loads(marker.read_text()) == want:
        print(f"re-using {root} (generated earlier with {want})")
    else:
        t0 = time.time()
        summary = generate_nuscenes(root, scenes=args.scenes, samples_per_scene=args.samples_per_scene,
                                    seed=args.seed, sweeps=SWEEPS, overwrite=True, progress=True)
        dt = time.time() - t0
        n = args.scenes * args.samples_per_scene
        print(f"generated {n} key frames in {dt:.1f} s ({dt / n:.2f} s per key frame with {SWEEPS} sweeps and 6 images)"
              f" -> {summary['dataroot']} ({summary['version']})")
        marker.write_text(json.dumps(want))
    ds = NuScenesDataset(root, "v1.0-mini", "mini_train", sweeps=3)
    print(format_summary(summarize(ds, max_samples=8)))
    sample = ds[0]
    names = list(ds.class_names)
    bev = save_png(render_scene(sample, view="both", color_by="height", class_names=names), out / "scene.png")
    cams = save_png(render_cameras(sample, class_names=names), out / "cameras.png")
    print(f"pictures: {bev} (BEV + 3D view, GT boxes), {cams} (6 cameras, projected LiDAR and boxes)")
    return root


def _config(name: str, root: Path, steps: int, seed: int):
    from kd3d.engine.config import load_config, override

    cfg = load_config(name)
    rt = dataclasses.replace(cfg.runtime, seed=seed, ckpt_interval=max(steps // 4, 1), eval_interval=0,
                             tensorboard=False)
    # the demo's dataset has v1.0-mini scene names (mini_train / mini_val)
    return override(dataclasses.replace(cfg, runtime=rt), {
        "data.root": str(root), "data.version": "v1.0-mini", "data.train_split": "mini_train",
        "data.val_split": "mini_val", "optim.max_steps": steps})


def _shortened(root: Path, name: str, steps: int) -> str:
    """What the demo shortened against the benchmark config ``name`` (its steps, the v2 data's
    256 training frames)."""
    from kd3d.data.nuscenes import NuScenesDataset
    from kd3d.engine.config import load_config

    planned = load_config(name).optim.max_steps
    frames = len(NuScenesDataset(root, "v1.0-mini", "mini_train", sweeps=1))
    return f"{name}: {steps} steps instead of {planned}, {frames} training frames instead of 256"


def _train(cfg, work: Path) -> dict:
    from kd3d.engine.checkpoint import latest_checkpoint
    from kd3d.engine.trainer import run_experiment

    done = work / "demo_metrics.json"
    steps = cfg.optim.max_steps
    if done.exists():
        record = json.loads(done.read_text())
        if record.get("steps") == steps:
            print(f"re-using {work} (finished earlier with {steps} steps)")
            return record["metrics"]
        print(f"{work} was trained with {record.get('steps')} steps, not {steps}: training again")
        shutil.rmtree(work)
    resume = latest_checkpoint(work) is not None
    t0 = time.time()
    metrics = run_experiment(cfg, work, resume=resume)
    print(f"{cfg.name}: trained {cfg.optim.max_steps} steps in {time.time() - t0:.0f} s")
    done.write_text(json.dumps({"steps": steps, "metrics": metrics}))
    return metrics


def _metric_line(name: str, m: dict) -> str:
    return f"{name:<34} mAP {m.get('mAP', float('nan')):.4f}  NDS {m.get('NDS', float('nan')):.4f}"


def stage_train(args, out: Path, root: Path) -> dict:
    _banner("train: LiDAR teacher and camera student (calibrated recipe, shortened)")
    print("recipe: one 3x3 conv per camera head branch, training targets = boxes with >= 1 LiDAR point")
    print("shortened to fit about 10 minutes: " + _shortened(root, TEACHER, args.teacher_steps) + "; "
          + _shortened(root, STUDENT, args.student_steps) + " (expect low camera metrics)")
    teacher = _config(TEACHER, root, args.teacher_steps, args.seed)
    student = _config(STUDENT, root, args.student_steps, args.seed)
    results = {
        "LiDAR teacher (CenterPoint voxel)": _train(teacher, out / "work" / "lidar_teacher"),
        "camera student (LSS)": _train(student, out / "work" / "camera_student"),
    }
    for name, m in results.items():
        print(_metric_line(name, m))
    return results


def stage_distill(args, out: Path, root: Path, results: dict) -> None:
    _banner(f"distill: camera student from the LiDAR teacher ({args.method})")
    config_name = METHODS[args.method]
    print("shortened: " + _shortened(root, config_name, args.student_steps))
    teacher_work = out / "work" / "lidar_teacher"
    from kd3d.engine.checkpoint import latest_checkpoint

    if latest_checkpoint(teacher_work) is None:
        raise SystemExit(f"kd3d demo: no LiDAR teacher checkpoint in {teacher_work}; run the train stage first")
    cfg = _config(config_name, root, args.student_steps, args.seed)
    # the synthetic configs train without BEV augmentation, so the LiDAR teacher's features are
    # stored during the first epoch and replayed afterwards (a distilled step then costs about a
    # plain student step)
    cfg = dataclasses.replace(cfg, distill=dataclasses.replace(
        cfg.distill, teacher_checkpoint=str(teacher_work), cache_dir=str(out / "work" / f"teacher_cache_{args.method}")))
    distilled = _train(cfg, out / "work" / f"camera_{args.method}")
    if "camera student (LSS)" not in results:
        results = stage_train(args, out, root)
    print(_metric_line("camera student, baseline", results["camera student (LSS)"]))
    print(_metric_line(f"camera student, {args.method}", distilled))
    print(_metric_line("LiDAR teacher", results["LiDAR teacher (CenterPoint voxel)"]))


def run(args) -> int:
    stages = _stages(args.stages)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    root = out / "nuscenes"
    if "data" in stages:
        root = stage_data(args, out)
    elif not (root / "v1.0-mini").is_dir():
        raise SystemExit(f"kd3d demo: no dataset in {root}; run the data stage first")
    results: dict = {}
    if "train" in stages:
        results = stage_train(args, out, root)
    if "distill" in stages:
        stage_distill(args, out, root, results)
    print(f"\nkd3d demo finished in {time.time() - t0:.0f} s; outputs in {out}/")
    return 0
