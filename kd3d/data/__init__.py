"""Datasets (nuScenes, KITTI), transforms, sample indices and the GT database.

Importing this package stays light (numpy only); the devkit is imported where splits are resolved.
"""
from kd3d.data.kitti import KittiDataset
from kd3d.data.nuscenes import NUSC_CAMERAS, NuScenesDataset

__all__ = ["KittiDataset", "NuScenesDataset", "NUSC_CAMERAS"]
