"""Compressed LiDAR student: CenterPoint voxel 0.1 at 0.5x channel width."""
from configs.nuscenes.centerpoint_voxel01 import CONFIG as BASE
from kd3d.engine.config import override

CONFIG = override(BASE, {"name": "nusc_centerpoint_voxel01_w050", "model.kwargs.width": 0.5})
