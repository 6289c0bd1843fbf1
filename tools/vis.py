#!/usr/bin/env python3
"""Thin shim: `python tools/vis.py ARGS` == `kd3d vis ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["vis", *sys.argv[1:]]))
