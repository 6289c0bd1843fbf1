"""Detection and segmentation heads (modality-independent)."""
from kd3d.models.heads.center_head import CenterHead

__all__ = ["CenterHead"]
