"""The ``kd3d`` console script.

Each subcommand lives in its own module ``kd3d.cli.<module>`` exposing
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported lazily, so
``kd3d --help`` stays fast and a broken optional dependency only affects its command.

Errors: any exception a command raises is reported here, once for all commands, as one line
``kd3d COMMAND: error: MESSAGE`` on stderr (exit status 2; 1 for an unexpected exception type);
``--debug`` (anywhere on the command line) shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

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
    "config": ("kd3d.cli.config", "list the shipped configs or print one with all its fields"),
    "convert": ("kd3d.cli.convert", "import mmdet3d / OpenPCDet CenterPoint teachers, export students to mmdet3d"),
}

# Exceptions that report a problem with the user's input (files, fields, checkpoints, data): exit 2.
_INPUT_ERRORS = (ValueError, TypeError, KeyError, LookupError, OSError, ImportError, RuntimeError)
_MAX_MESSAGE = 600


def _load(name: str):
    module, _ = COMMANDS[name]
    return importlib.import_module(module)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kd3d", description="3D and multi-modal knowledge distillation")
    from kd3d import __version__

    parser.add_argument("--version", action="version", version=f"kd3d {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error (also accepted after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        if name == only:
            _load(name).add_arguments(p)
    return parser


def _one_line(exc: BaseException) -> str:
    """The exception as one line: its message with newlines folded, capped in length."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, KeyError) and len(exc.args) == 1:
        msg = f"missing key {exc.args[0]!r}"
    if not isinstance(exc, _INPUT_ERRORS) or type(exc) in (RuntimeError, TypeError):
        msg = f"{type(exc).__name__}: {msg}"
    if len(msg) > _MAX_MESSAGE:
        msg = msg[:_MAX_MESSAGE] + f"... ({len(msg)} characters; --debug shows all)"
    return msg


def _setup_logging() -> None:
    """Library modules log under the ``kd3d`` logger; the CLI shows INFO and above on stderr."""
    from kd3d.engine.logging import get_logger

    get_logger()


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:cut]
    argv = [a for i, a in enumerate(argv) if not (a == "--debug" and i < cut)]
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    args.debug = debug
    _setup_logging()
    try:
        return int(_load(args.command).run(args) or 0)
    except KeyboardInterrupt:
        print(f"kd3d {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # every command's errors end here: one line unless --debug
        if debug:
            traceback.print_exc()
        expected = isinstance(exc, _INPUT_ERRORS)
        hint = "" if expected or debug else " (--debug shows the traceback)"
        print(f"kd3d {args.command}: error: {_one_line(exc)}{hint}", file=sys.stderr)
        return 2 if expected else 1


def main(argv: list[str] | None = None) -> int:
    """Run one ``kd3d`` command; returns its exit status. A ``torchrun`` rank (a process that
    initialised a process group) does not return: :func:`kd3d.engine.dist.finish` flushes and
    exits with the status, skipping the interpreter teardown where gloo's threads abort."""
    code = _main(argv)
    dist = sys.modules.get("kd3d.engine.dist")  # imported by every command that can go distributed
    return dist.finish(code) if dist is not None else code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
