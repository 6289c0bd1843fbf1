"""Benchmark v2, segmentation suite: the 0.25x segmenter (the 0.5x one sat only 0.026 mIoU below
its teacher on the v1 data: val 0.392 vs 0.418)."""
from kd3d.engine.config import load_base, override

WIDTH = 0.25
CONFIG = override(load_base("bench/seg_teacher"), {"name": "bench_seg_student", "model.kwargs.width": WIDTH})
