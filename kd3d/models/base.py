"""The model contract shared by every detector and segmenter in kd3d.

``forward(batch) -> ModelOutput`` returns *named* features, so distillers read them by name:

=================  ==========================================================================
key                meaning
=================  ==========================================================================
``voxel``          SparseConvTensor, last sparse encoder stage (before collapsing z)
``bev``            (B, C, H, W) BEV map entering the 2D BEV backbone (LiDAR: scattered /
                   collapsed sparse features; camera: pooled frustum features)
``bev_stage{k}``   (B, C_k, H_k, W_k) outputs of the BEV backbone stages (k = 1, 2, ...)
``bev_neck``       (B, C, H, W) neck output = head input (on the model's ``BEVGrid``)
``heatmap``        (B, num_classes, H, W) head heatmap *logits*, classes in config order
``reg``            (B, R, H, W) head regression maps concatenated
                   (offset 2, z 1, log dims 3, sin/cos yaw 2, velocity 2 -> R = 10)
``depth``          (B*NC, D, h, w) camera depth distribution (softmax over D)
``point_feats``    (N, C) per-point features (segmenters), points of all samples concatenated
``point_logits``   (N, K) per-point class logits (segmenters)
``voxel_logits``   SparseConvTensor of per-voxel logits (segmenters)
=================  ==========================================================================

Every model declares its features with ``feature_specs() -> dict[str, FeatureSpec]``
(:mod:`kd3d.models.specs`: channels, kind, stride, BEV grid per key); distillation reads channel
counts and layouts from it.

``preds`` holds whatever the model's ``loss()`` and ``predict()`` need (raw head outputs).
``loss(output, batch) -> dict[str, Tensor]`` (keys without prefix; the caller sums them) and
``predict(output, batch) -> list[dict]`` (one per sample) are separate methods.

Detection results per sample: ``{"boxes": Boxes3D (LiDAR frame), "scores": (K,) float,
"labels": (K,) int64 class index, "attrs": (K,) int64 attribute index or -1}`` (numpy).
Segmentation results per sample: ``{"point_labels": (num_key_points,) int64}`` (16-class).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from kd3d.models.specs import FeatureSpec


@dataclass
class ModelOutput:
    feats: dict[str, Any] = field(default_factory=dict)
    preds: dict[str, Any] = field(default_factory=dict)


class BaseModel(nn.Module):
    """Base class: subclasses implement ``forward``, ``feature_specs``, ``loss`` and ``predict``.

    ``bev_grid`` (:class:`kd3d.structures.BEVGrid`) is the grid of ``feats['bev_neck']`` for
    detectors (None for segmenters).
    """

    bev_grid = None
    class_names: tuple[str, ...] = ()

    def forward(self, batch) -> ModelOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def feature_specs(self) -> dict[str, FeatureSpec]:  # pragma: no cover - interface
        """One :class:`FeatureSpec` per key of ``forward(batch).feats``."""
        raise NotImplementedError(f"{type(self).__name__} does not declare feature_specs()")

    def loss(self, output: ModelOutput, batch) -> dict[str, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, output: ModelOutput, batch) -> list[dict]:  # pragma: no cover
        raise NotImplementedError
