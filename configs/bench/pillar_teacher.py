"""Benchmark v2, pillar suite: the CenterPoint pillar teacher (1.0x) on the v2 data, targets and
budget of ``bench/lidar_teacher``."""
from kd3d.engine.config import load_base, override

CONFIG = override(load_base("bench/lidar_teacher"), {"name": "bench_pillar_teacher", "model.name": "centerpoint_pillar"})
