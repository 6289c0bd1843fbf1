"""Backbones: the SECOND sparse 3D encoders (spconv; plain and CenterPoint's residual one) and the
SECOND 2D BEV backbone."""
from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.backbones.sparse_encoder import SparseEncoder, scale_channels
from kd3d.models.backbones.sparse_resnet import ResidualSparseEncoder, SparseBasicBlock

__all__ = ["ResidualSparseEncoder", "SECONDBackbone", "SparseBasicBlock", "SparseEncoder", "scale_channels"]
