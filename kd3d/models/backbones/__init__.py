"""Backbones: the SECOND sparse 3D encoder (spconv) and the SECOND 2D BEV backbone."""
from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.backbones.sparse_encoder import SparseEncoder, scale_channels

__all__ = ["SECONDBackbone", "SparseEncoder", "scale_channels"]
