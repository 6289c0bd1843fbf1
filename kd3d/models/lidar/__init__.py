"""LiDAR detectors: CenterPoint with a SECOND sparse voxel encoder or a PointPillars encoder."""
from kd3d.models.lidar.detector import LidarCenterPoint
from kd3d.models.lidar.presets import (MMDET3D_PILLAR, MMDET3D_VOXEL, NUSC_TASKS, centerpoint_pillar,
                                       centerpoint_voxel, head_grid)

__all__ = ["LidarCenterPoint", "MMDET3D_PILLAR", "MMDET3D_VOXEL", "NUSC_TASKS", "centerpoint_pillar",
           "centerpoint_voxel", "head_grid"]
