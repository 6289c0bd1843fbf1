"""BEV necks."""
from kd3d.models.necks.second_fpn import SECONDFPN

__all__ = ["SECONDFPN"]
