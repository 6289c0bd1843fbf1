#!/usr/bin/env python3
"""Thin shim: `python tools/synth.py ARGS` == `kd3d synth ARGS`."""
import sys

from kd3d.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
