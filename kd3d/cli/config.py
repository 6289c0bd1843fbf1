"""``kd3d config list`` and ``kd3d config show NAME [--set k=v ...]``.

``list`` prints the names of the shipped configs (what ``kd3d train NAME`` accepts) and the
folder they are read from. ``show`` prints the resolved config with every field (defaults
included) as JSON, the same form a run saves as ``work_dir/config.json``; NAME may also be a
``.py`` path or a saved ``config.json``. Every printed field can be changed with
``--set section.field=value`` (``kd3d train NAME --set optim.max_steps=100``).
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="names of the shipped configs")
    p = sub.add_parser("show", help="print a config with all its fields (JSON)")
    p.add_argument("config", help="config name (e.g. synth/lidar_teacher), .py file or saved config.json")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field first (repeatable)")


def run(args) -> int:
    from kd3d.engine.config import config_to_json, load_config
    from kd3d.engine.config_files import configs_dir, list_configs

    if args.action == "list":
        print(f"# configs in {configs_dir()}")
        for name in list_configs():
            print(name)
        return 0
    print(config_to_json(load_config(args.config, args.overrides)))
    return 0
