"""LiDAR detectors: CenterPoint with a SECOND sparse voxel encoder or a PointPillars encoder."""
from kd3d.models.lidar.detector import LidarCenterPoint
from kd3d.models.lidar.presets import NUSC_TASKS, centerpoint_pillar, centerpoint_voxel, head_grid

__all__ = ["LidarCenterPoint", "NUSC_TASKS", "centerpoint_pillar", "centerpoint_voxel", "head_grid"]
