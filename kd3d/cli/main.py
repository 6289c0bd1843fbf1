"""The ``kd3d`` console script.

Each subcommand lives in its own module ``kd3d.cli.<module>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily, so
``kd3d --help`` stays fast and a broken optional dependency only affects its command.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("kd3d.cli.demo", "run kd3d's main job end to end on a small synthetic dataset"),
    "synth": ("kd3d.cli.synth", "generate a real-format synthetic nuScenes or KITTI dataset"),
    "create-data": ("kd3d.cli.create_data", "build the fast sample index for a dataset"),
    "info": ("kd3d.cli.info", "load a dataset through kd3d's loaders and print a summary"),
    "eval": ("kd3d.cli.eval", "evaluate results (nuScenes detection, lidarseg, KITTI)"),
    "train": ("kd3d.cli.train", "train a model or a distiller from a config"),
    "test": ("kd3d.cli.test", "run a checkpoint on a split, write results and evaluate"),
    "vis": ("kd3d.cli.vis", "render scenes, cameras, distillation maps and evaluation plots"),
}


def _load(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kd3d", description="3D and multi-modal knowledge distillation")
    from kd3d import __version__

    parser.add_argument("--version", action="version", version=f"kd3d {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == only:
            _load(name).add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(_load(args.command).run(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
