"""``kd3d test CONFIG --checkpoint C [--out DIR] [--split S] [--set k=v ...]``.

Runs the checkpoint's model on the split, writes the result files (nuScenes submission JSON,
KITTI label files or lidarseg ``.bin`` predictions, depending on ``eval.evaluator``) under
``--out`` and prints the metrics. Works under ``torchrun`` too (predictions are gathered).
"""
from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help="config .py file or name under configs/")
    parser.add_argument("--checkpoint", required=True, help="a kd3d checkpoint (.pth)")
    parser.add_argument("--out", default=None, help="folder for result files and metrics.json")
    parser.add_argument("--split", default=None, help="split to run on (default: data.val_split)")
    parser.add_argument("--format-only", action="store_true",
                        help="write the result files without computing metrics (e.g. the nuScenes test split)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")


def run(args) -> int:
    from pathlib import Path

    from kd3d.engine import dist
    from kd3d.engine.checkpoint import CheckpointError
    from kd3d.engine.config import ConfigError, load_config, override
    from kd3d.engine.trainer import evaluate

    try:
        cfg = load_config(args.config, args.overrides)
        if args.format_only:
            cfg = override(cfg, {"eval.kwargs": {**cfg.eval.kwargs, "format_only": True}})
        metrics = evaluate(cfg, args.checkpoint, args.out, split=args.split)
        main = dist.is_main()
    except (ConfigError, CheckpointError) as exc:
        print(f"kd3d test: {exc}")
        return 2
    finally:
        dist.cleanup()
    if main:
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            (Path(args.out) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
