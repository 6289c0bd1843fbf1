"""Compressed LiDAR student: the voxel teacher at 0.25x channel width."""
from configs.synth.lidar_teacher import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "synth_lidar_student_025", "model.kwargs.width": 0.25})
