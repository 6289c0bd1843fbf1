"""Compressed LiDAR student: CenterPoint voxel 0.1 at 0.25x channel width."""
from kd3d.engine.config import load_base, override

BASE = load_base("nuscenes/centerpoint_voxel01")

CONFIG = override(BASE, {"name": "nusc_centerpoint_voxel01_w025", "model.kwargs.width": 0.25})
