"""PointDistiller's PointPillars student on KITTI: the pillar detector at 0.5x channel width."""
from configs.kitti.pointpillars import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "kitti_pointpillars_w050", "model.kwargs.width": 0.5})
