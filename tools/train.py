#!/usr/bin/env python3
"""Thin shim: `python tools/train.py ARGS` == `kd3d train ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
