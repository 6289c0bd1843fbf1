"""``kd3d train CONFIG [--set k=v ...] [--work-dir D] [--resume [CKPT]]``.

Single process: ``kd3d train synth/lidar_teacher``. Several processes (DDP, gloo on CPU, NCCL on
CUDA): ``torchrun --nproc_per_node 2 -m kd3d.cli.main train synth/lidar_teacher``.
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config .py file or name under configs/ (e.g. synth/lidar_teacher)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set optim.lr=1e-3 (repeatable)")
    parser.add_argument("--work-dir", default=None, help="output folder (default: runtime.work_dir or work_dirs/NAME)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="CKPT",
                        help="continue from the newest checkpoint in the work dir (or from CKPT)")
    parser.add_argument("--stop-after", type=int, default=None, metavar="STEP",
                        help="stop (after checkpointing) at this global step; resume later with --resume")


def run(args) -> int:
    from kd3d.engine import dist
    from kd3d.engine.config import ConfigError, load_config
    from kd3d.engine.trainer import run_experiment

    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as exc:
        print(f"kd3d train: {exc}")
        return 2
    try:
        metrics = run_experiment(cfg, args.work_dir, resume=args.resume, stop_after=args.stop_after)
    except ConfigError as exc:
        print(f"kd3d train: {exc}")
        return 2
    finally:
        dist.cleanup()
    if metrics:
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
