"""Cheaper LiDAR teacher on synthetic nuScenes: PointPillars-style CenterPoint (same head grid)."""
from configs.synth.lidar_teacher import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "synth_lidar_teacher_pillar", "model.name": "centerpoint_pillar"})
