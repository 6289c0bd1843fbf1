"""Benchmark v2, segmentation suite: the sparse-UNet teacher (1.0x) of ``synth/seg_teacher`` on the
v2 data (segmentation has no box targets; the min-points rule does not apply). ``MAX_STEPS``
is the planned budget (150 steps on the 64 v1 frames)."""
from kd3d.engine.config import load_base, load_base_module, override

V2 = load_base_module("bench/lidar_teacher")
MAX_STEPS = 600
CONFIG = override(load_base("synth/seg_teacher"), {**V2.DATA_V2, "name": "bench_seg_teacher", "optim.max_steps": MAX_STEPS})
