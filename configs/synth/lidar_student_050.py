"""Compressed LiDAR student: the voxel teacher at 0.5x channel width (for PointDistiller /
UniDistill LiDAR->LiDAR runs, or trained alone as the no-distillation baseline)."""
from kd3d.engine.config import load_base, override

BASE = load_base("synth/lidar_teacher")

CONFIG = override(BASE, {"name": "synth_lidar_student_050", "model.kwargs.width": 0.5})
