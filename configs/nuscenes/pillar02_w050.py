"""Compressed pillar student (PointDistiller's PointPillars setting): 0.5x channel width."""
from configs.nuscenes.centerpoint_pillar02 import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "nusc_pillar02_w050", "model.kwargs.width": 0.5})
