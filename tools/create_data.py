#!/usr/bin/env python3
"""Thin shim: `python tools/create_data.py ARGS` == `kd3d create-data ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["create-data", *sys.argv[1:]]))
