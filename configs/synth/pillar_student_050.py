"""Compressed pillar student: the pillar teacher at 0.5x width (PointDistiller's PointPillars setting)."""
from kd3d.engine.config import load_base, override

BASE = load_base("synth/lidar_teacher_pillar")

CONFIG = override(BASE, {"name": "synth_pillar_student_050", "model.kwargs.width": 0.5})
