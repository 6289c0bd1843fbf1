"""``kd3d test [CONFIG] --checkpoint C [--out DIR] [--split S] [--set k=v ...]``.

Runs the checkpoint's model on the split, writes the result files (nuScenes submission JSON,
KITTI label files or lidarseg ``.bin`` predictions, depending on ``eval.evaluator``) under
``--out`` and prints the metrics. Works under ``torchrun`` too (predictions are gathered).

Without CONFIG the run's saved config is used: ``config.json`` of the work dir holding
``checkpoints/C``, else the config stored inside the checkpoint. It prints which one it uses.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="config name, .py file or saved config.json (default: the run's saved config)")
    parser.add_argument("--checkpoint", required=True, help="a kd3d checkpoint (.pth)")
    parser.add_argument("--out", default=None, help="folder for result files and metrics.json")
    parser.add_argument("--split", default=None, help="split to run on (default: data.val_split)")
    parser.add_argument("--format-only", action="store_true",
                        help="write the result files without computing metrics (e.g. the nuScenes test split)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")


def resolve_config(args):
    """``(config, description of its source)`` for ``kd3d test``."""
    from kd3d.engine.checkpoint import load_checkpoint
    from kd3d.engine.config import ConfigError, apply_overrides, config_from_dict, load_config

    if args.config is not None:
        return load_config(args.config, args.overrides), f"config {args.config}"
    ckpt = Path(args.checkpoint)
    if ckpt.parent.name == "checkpoints" and (ckpt.parent.parent / "config.json").is_file():
        saved = ckpt.parent.parent / "config.json"
        return load_config(saved, args.overrides), f"the run's saved config {saved}"
    text = load_checkpoint(ckpt).get("config")
    if not text:
        raise ConfigError(f"checkpoint {ckpt}: holds no config and no config.json is beside its run; give CONFIG")
    cfg = config_from_dict(json.loads(text), source=f"checkpoint {ckpt} (config)")
    return apply_overrides(cfg, args.overrides), f"the config saved in {ckpt}"


def run(args) -> int:
    from kd3d.engine import dist
    from kd3d.engine.config import override
    from kd3d.engine.trainer import evaluate

    cfg, source = resolve_config(args)
    if os.environ.get("RANK", "0") == "0":
        print(f"kd3d test: using {source}", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    if args.format_only:
        cfg = override(cfg, {"eval.kwargs": {**cfg.eval.kwargs, "format_only": True}})
    try:
        metrics = evaluate(cfg, args.checkpoint, args.out, split=args.split)
        main = dist.is_main()
    finally:
        dist.cleanup()
    if main:
        if args.out:
            (Path(args.out) / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
        print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0
