"""LiDAR-camera fusion detectors (BEV concatenation + conv fuser, CenterHead)."""
from kd3d.models.fusion.detector import ConvFuser, FusionCenterPoint
from kd3d.models.fusion.presets import fusion_centerpoint

__all__ = ["ConvFuser", "FusionCenterPoint", "fusion_centerpoint"]
