"""CenterPoint-style LiDAR detector: encoder -> SECOND 2D backbone -> SECOND FPN -> CenterHead.

The encoder is a :class:`~kd3d.models.lidar.encoders.VoxelEncoder` (sparse 3D, the teacher)
or a :class:`~kd3d.models.lidar.encoders.PillarEncoder` (PointPillars-like). Build presets
with :mod:`kd3d.models.lidar.presets`.

Named features (``ModelOutput.feats``):

==============  ===========================================================================
``voxel``       SparseConvTensor. Voxel encoder: the last sparse stage (stride 8, before the
                out conv); pillar encoder: the (V, C) pillar features on the (1, ny, nx)
                pillar grid (stride 1)
``voxel_num_points`` SparseConvTensor (V, 1): points the voxelizer kept per voxel / pillar
                (capped at its max points per voxel), on the voxelizer grid; no gradient
``bev``         (B, C, H0, W0) dense BEV map entering the 2D backbone (on ``encoder.bev_grid``)
``bev_stage{k}`` (B, C_k, H0 / S_k, W0 / S_k) 2D backbone stage outputs, k = 1, 2, ...
``bev_neck``    (B, C_neck, H, W) neck output = head input, on ``self.bev_grid``
``heatmap``     (B, num_classes, H, W) heatmap logits in ``class_names`` order
``reg``         (B, 10 * T, H, W) regression maps of the T tasks concatenated
``head_shared`` (B, C_share, H, W) the head's shared 3x3 conv + BN + ReLU output
==============  ===========================================================================
"""
from __future__ import annotations

import torch
from torch import nn

from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.necks.second_fpn import SECONDFPN
from kd3d.models.specs import FeatureSpec, head_specs


class LidarCenterPoint(BaseModel):
    """encoder (points list -> {"bev", ...}), backbone, neck and head are built modules.

    The head's grid must equal the encoder grid scaled by the neck's output stride; this is
    checked here so a teacher and a camera student can rely on ``bev_grid``.
    """

    def __init__(self, *, encoder: nn.Module, backbone: SECONDBackbone, neck: SECONDFPN, head: CenterHead):
        super().__init__()
        expected = encoder.bev_grid.scaled(neck.stride)
        g = head.grid
        if (g.shape != expected.shape or abs(g.dx - expected.dx) > 1e-6 or abs(g.dy - expected.dy) > 1e-6
                or abs(g.xmin - expected.xmin) > 1e-6 or abs(g.ymin - expected.ymin) > 1e-6):
            raise ValueError(f"LidarCenterPoint: head grid {g} != encoder grid x neck stride {neck.stride}: {expected}")
        if neck.out_channels_total != head.in_channels:
            raise ValueError(f"LidarCenterPoint: neck gives {neck.out_channels_total} channels, head expects "
                             f"{head.in_channels}")
        self.encoder, self.backbone, self.neck, self.head = encoder, backbone, neck, head
        self.bev_grid = head.grid
        self.class_names = head.class_names

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """Specs of every ``feats`` key (see the module docstring): the encoder's ``voxel`` and
        ``bev``, the backbone stages on the encoder grid scaled by their strides, ``bev_neck``,
        ``heatmap``, ``reg`` and ``head_shared`` on the head grid."""
        return backbone_specs(self.encoder.feature_specs(), self.backbone, self.neck, self.head)

    def forward(self, batch) -> ModelOutput:
        """batch: :class:`kd3d.structures.sample.Batch` (uses ``batch.points``)."""
        points = batch.points
        if not points:
            raise ValueError("LidarCenterPoint: batch.points is empty (need a list of (N, 5) tensors)")
        device = next(self.parameters()).device
        points = [p.to(device) for p in points]
        feats = dict(self.encoder(points))
        stages = self.backbone(feats["bev"])
        for k, s in enumerate(stages, start=1):
            feats[f"bev_stage{k}"] = s
        neck = self.neck(stages)
        feats["bev_neck"] = neck
        preds = self.head(neck)
        feats.update(self.head.named_feats(preds))
        return ModelOutput(feats=feats, preds=preds)

    def loss(self, output: ModelOutput, batch) -> dict[str, torch.Tensor]:
        """{"heatmap", "bbox"} (+ "attr" with an attribute branch), see :meth:`CenterHead.loss`;
        GT from ``batch.gt_boxes``, ``gt_labels``, ``gt_attrs``."""
        attrs = batch.gt_attrs if self.head.attributes else None
        return self.head.loss(output.preds, batch.gt_boxes, batch.gt_labels, gt_attrs=attrs)

    @torch.no_grad()
    def predict(self, output: ModelOutput, batch=None) -> list[dict]:
        """Per-sample {"boxes": Boxes3D (LiDAR frame), "scores", "labels", "attrs"} (numpy)."""
        return self.head.decode(output.preds)


def backbone_specs(specs: dict, backbone: SECONDBackbone, neck: SECONDFPN, head: CenterHead) -> dict[str, FeatureSpec]:
    """``specs`` (with the ``bev`` input map) plus ``bev_stage{k}``, ``bev_neck``, ``heatmap``,
    ``reg`` and ``head_shared`` of a SECOND backbone + FPN + CenterHead stack (LiDAR and fusion detectors)."""
    out = dict(specs)
    bev = specs["bev"]
    for k, (c, s) in enumerate(zip(backbone.out_channels_list, backbone.strides), start=1):
        out[f"bev_stage{k}"] = FeatureSpec(c, "bev", bev.stride * s, grid=bev.grid.scaled(s))
    stride = bev.stride * neck.stride
    out["bev_neck"] = FeatureSpec(neck.out_channels_total, "bev", stride, grid=head.grid)
    out.update(head_specs(head, stride))
    return out
