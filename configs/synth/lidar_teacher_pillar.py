"""Cheaper LiDAR teacher on synthetic nuScenes: PointPillars-style CenterPoint (same head grid)."""
from kd3d.engine.config import load_base, override

BASE = load_base("synth/lidar_teacher")

CONFIG = override(BASE, {"name": "synth_lidar_teacher_pillar", "model.name": "centerpoint_pillar"})
