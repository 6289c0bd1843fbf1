"""Benchmark v2, pillar suite: the 0.25x pillar student of ``bench/pillar_teacher`` (0.5x left
no real gap on the voxel suite of the v1 data, so both compression suites use 0.25x)."""
from kd3d.engine.config import load_base, override

WIDTH = 0.25
CONFIG = override(load_base("bench/pillar_teacher"), {"name": "bench_pillar_student", "model.kwargs.width": WIDTH})
