"""PointDistiller's PointPillars student on KITTI: the pillar detector at 0.5x channel width."""
from kd3d.engine.config import load_base, override

BASE = load_base("kitti/pointpillars")

CONFIG = override(BASE, {"name": "kitti_pointpillars_w050", "model.kwargs.width": 0.5})
