"""``kd3d train CONFIG [--set k=v ...] [--work-dir D] [--resume [CKPT]]``.

Single process: ``kd3d train synth/lidar_teacher``. Several processes (DDP, gloo on CPU, NCCL on
CUDA): ``torchrun --nproc_per_node 2 -m kd3d.cli.main train synth/lidar_teacher``.

Resuming: ``kd3d train --resume --work-dir D`` continues the run in ``D`` with the config it saved
there (``D/config.json``); with CONFIG given, that config is used instead and must match the
checkpoint's except for logging/evaluation fields and the schedule length (see
:mod:`kd3d.engine.resume`).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

EPILOG = """\
config fields:  kd3d config show CONFIG      (every field with its value; kd3d config list: the names)
cap the steps:  kd3d train CONFIG --set optim.max_steps=N
resume a run:   kd3d train --resume --work-dir DIR   (uses DIR/config.json)"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", nargs="?", default=None,
                        help="config name (e.g. synth/lidar_teacher; `kd3d config list`), a .py file or a saved "
                             "config.json; optional with --resume (then the run's saved config is used)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set optim.lr=1e-3 (repeatable; "
                             "`kd3d config show CONFIG` lists the fields)")
    parser.add_argument("--work-dir", default=None, help="output folder (default: runtime.work_dir or work_dirs/NAME)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                        help="continue from the newest checkpoint in the work dir (or from CKPT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="a fresh run in a work dir that holds checkpoints deletes them first (without "
                             "this flag such a work dir is refused)")
    parser.add_argument("--stop-after", type=int, default=None, metavar="STEP",
                        help="stop (after checkpointing) at this global step; resume later with --resume")


def _say(text: str) -> None:
    if os.environ.get("RANK", "0") == "0":
        print(f"kd3d train: {text}", flush=True)


def resolve_config(args):
    """The config to train and where it came from: CONFIG when given, else (with --resume) the
    saved ``config.json`` of the run being resumed."""
    from kd3d.engine.config import ConfigError, load_config

    if isinstance(args.resume, str) and not args.resume.endswith(".pth") and not Path(args.resume).is_file():
        raise ConfigError(f"--resume {args.resume}: expected a .pth checkpoint (put CONFIG before --resume)")
    if args.config is not None:
        return load_config(args.config, args.overrides), f"config {args.config}"
    if not args.resume:
        raise ConfigError("no CONFIG given: name one (`kd3d config list`), or pass --resume --work-dir DIR to "
                          "continue a run with its saved config")
    if isinstance(args.resume, str):
        ckpt = Path(args.resume)
        run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        run_dir = Path(args.work_dir) if args.work_dir else run_dir
    elif args.work_dir:
        run_dir = Path(args.work_dir)
    else:
        raise ConfigError("--resume without CONFIG needs --work-dir DIR (the run to continue)")
    saved = run_dir / "config.json"
    if not saved.is_file():
        raise ConfigError(f"{saved}: no saved config to resume with; give CONFIG explicitly")
    if args.work_dir is None:
        args.work_dir = str(run_dir)
    return load_config(saved, args.overrides), f"the run's saved config {saved}"


def run(args) -> int:
    from kd3d.engine import dist
    from kd3d.engine.trainer import run_experiment

    cfg, source = resolve_config(args)
    _say(f"using {source}")
    try:
        metrics = run_experiment(cfg, args.work_dir, resume=args.resume, stop_after=args.stop_after,
                                 overwrite=args.overwrite)
    finally:
        dist.cleanup()
    if metrics:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
