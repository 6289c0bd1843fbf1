"""PointPillars-style CenterPoint, 0.2 m pillars, nuScenes trainval (GPU)."""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/centerpoint_voxel01")

CONFIG = override(BASE, {"name": "nusc_centerpoint_pillar02", "model.name": "centerpoint_pillar"})
