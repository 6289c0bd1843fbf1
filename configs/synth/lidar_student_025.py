"""Compressed LiDAR student: the voxel teacher at 0.25x channel width."""
from kd3d.engine.config import load_base, override

BASE = load_base("synth/lidar_teacher")

CONFIG = override(BASE, {"name": "synth_lidar_student_025", "model.kwargs.width": 0.25})
