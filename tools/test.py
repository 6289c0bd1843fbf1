#!/usr/bin/env python3
"""Thin shim: `python tools/test.py ARGS` == `kd3d test ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["test", *sys.argv[1:]]))
