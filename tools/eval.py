#!/usr/bin/env python3
"""Thin shim: `python tools/eval.py ARGS` == `kd3d eval ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["eval", *sys.argv[1:]]))
