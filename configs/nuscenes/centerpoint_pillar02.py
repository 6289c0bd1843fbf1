"""PointPillars-style CenterPoint, 0.2 m pillars, nuScenes trainval (GPU)."""
from configs.nuscenes.centerpoint_voxel01 import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "nusc_centerpoint_pillar02", "model.name": "centerpoint_pillar"})
