"""Compressed pillar student: the pillar teacher at 0.5x width (PointDistiller's PointPillars setting)."""
from configs.synth.lidar_teacher_pillar import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "synth_pillar_student_050", "model.kwargs.width": 0.5})
