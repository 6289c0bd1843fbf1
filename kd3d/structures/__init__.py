"""Shared structures: boxes, BEV grids, calibrations and sample containers."""
from kd3d.structures.bev import BEVGrid
from kd3d.structures.boxes import Boxes3D, KittiBoxes
from kd3d.structures.calib import KittiCalib

__all__ = ["BEVGrid", "Boxes3D", "KittiBoxes", "KittiCalib"]
