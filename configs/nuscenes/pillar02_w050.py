"""Compressed pillar student (PointDistiller's PointPillars setting): 0.5x channel width."""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/centerpoint_pillar02")

CONFIG = override(BASE, {"name": "nusc_pillar02_w050", "model.kwargs.width": 0.5})
