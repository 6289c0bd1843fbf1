"""Benchmark v2: the LiDAR voxel teacher (CenterPoint SECOND, 1.0x) of the camera and voxel suites.

Data (``bench/make_data_v2.sh``): ``datasets/bench_v2/nuscenes``, v1.0-trainval names, split
``train`` = 32 scenes / 256 key frames, ``val`` = 8 other scenes / 64 key frames (seed 12).
Training targets keep only boxes with >= ``MIN_POINTS`` annotated LiDAR points (``num_lidar_pts``):
about a third of the in-range boxes of the generator have none, no sensor sees them, and the
nuScenes evaluation ignores them too. The other settings are ``synth/lidar_teacher``'s.
``MAX_STEPS`` is the planned budget; ``bench/calibrate.py`` measures the curve around it.
"""
from kd3d.engine.config import load_base_module, override

SYNTH = load_base_module("synth/lidar_teacher")
POINT_RANGE = SYNTH.POINT_RANGE
ROOT = "datasets/bench_v2/nuscenes"
MIN_POINTS = 1
# every bench config (students and arms too) trains and evaluates on these splits
DATA_V2 = {"data.root": ROOT, "data.version": "v1.0-trainval", "data.train_split": "train",
           "data.val_split": "val"}
BOX_FILTER = ["BoxRangeFilter", {"xy_range": [-51.2, -51.2, 51.2, 51.2], "min_points": MIN_POINTS}]


def with_min_points(transforms: list) -> list:
    """``transforms`` with every ``BoxRangeFilter`` replaced by :data:`BOX_FILTER` (one is added
    at the end when there is none)."""
    out = [t for t in transforms if t[0] != "BoxRangeFilter"]
    return out + [BOX_FILTER]


MAX_STEPS = 1200
CONFIG = override(SYNTH.CONFIG, {
    **DATA_V2, "name": "bench_lidar_teacher",
    "data.train_kwargs": {"transforms": with_min_points(SYNTH.TRAIN_TRANSFORMS)},
    "optim.max_steps": MAX_STEPS,
})
