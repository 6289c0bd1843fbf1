"""Camera BEV detector (LSS / BEVDepth style), the usual student of cross-modal distillation.

Pipeline, per batch (see :mod:`kd3d.structures.sample` for the Batch fields)::

    images (B, NC, 3, H, W) -> ResNet -> FPN16 (B*NC, Cf, H/16, W/16)
      -> DepthNet: depth softmax (B*NC, D, h, w) x context (B*NC, C, h, w)
      -> frustum points in the LiDAR frame -> bev_pool -> 'bev' (B, C, ny, nx)
      -> BEVEncoder -> 'bev_stage1', 'bev_stage2', 'bev_neck' -> CenterHead -> 'heatmap', 'reg', 'head_shared'

Named features (model contract, :mod:`kd3d.models.base`): ``bev``, ``bev_stage{k}``,
``bev_neck``, ``heatmap``, ``reg``, ``head_shared``, ``depth``. ``loss()`` = CenterHead losses (+ depth BCE
from projected LiDAR points when ``depth_loss_weight > 0``).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.camera.backbone import FPN16, ResNet
from kd3d.models.camera.bev_encoder import BEVEncoder
from kd3d.models.camera.view_transformer import DepthBins, LSSViewTransformer, depth_loss, depth_targets
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.specs import FeatureSpec, head_specs
from kd3d.structures.bev import BEVGrid


class CameraToBEV(nn.Module):
    """Images + camera matrices -> pooled BEV map (the camera branch, shared with fusion).

    forward(batch) -> (bev (B, C, ny, nx) on ``view_transformer.grid``, depth (B*NC, D, h, w)).
    """

    def __init__(self, *, backbone: ResNet, neck: FPN16, view_transformer: LSSViewTransformer):
        super().__init__()
        self.backbone, self.neck, self.view_transformer = backbone, neck, view_transformer
        self.out_channels = view_transformer.out_channels

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``bev`` (pooled map on the view transformer's grid) and ``depth`` (per camera image)."""
        vt = self.view_transformer
        return {"bev": FeatureSpec(self.out_channels, "bev", 1, grid=vt.grid),
                "depth": FeatureSpec(vt.bins.num, "image", vt.stride)}

    def forward(self, batch) -> tuple[torch.Tensor, torch.Tensor]:
        images = batch.images
        if images is None or images.ndim != 5 or images.shape[2] != 3:
            got = None if images is None else tuple(images.shape)
            raise ValueError(f"CameraToBEV: batch.images must be (B, NC, 3, H, W), got {got}")
        b, nc, _, h, w = images.shape
        if (h, w) != self.view_transformer.image_size:
            raise ValueError(f"CameraToBEV: batch.images are {h}x{w}, model built for {self.view_transformer.image_size}")
        feats = self.neck(self.backbone(images.reshape(b * nc, 3, h, w)))
        return self.view_transformer(feats, batch)

    def depth_loss(self, depth: torch.Tensor, batch) -> torch.Tensor:
        vt = self.view_transformer
        target = depth_targets(
            batch.points, batch.cam_intrinsics, batch.cam2lidar, batch.img_aug, vt.image_size, vt.stride, vt.bins
        )
        return depth_loss(depth, target.to(depth.device))


class CameraHeadLosses:
    """``loss``/``predict`` shared by detectors with a CenterHead (``self.head``) and a camera
    branch (``self.camera``) whose depth supervision is weighted by ``self.depth_loss_weight``."""

    def loss(self, output: ModelOutput, batch) -> dict[str, torch.Tensor]:
        attrs = batch.gt_attrs if self.head.attributes else None
        losses = self.head.loss(output.preds, batch.gt_boxes, batch.gt_labels, gt_attrs=attrs)
        if self.depth_loss_weight > 0:
            losses["depth"] = self.depth_loss_weight * self.camera.depth_loss(output.feats["depth"], batch)
        return losses

    @torch.no_grad()
    def predict(self, output: ModelOutput, batch=None) -> list[dict]:
        """Per-sample {"boxes": Boxes3D (LiDAR frame), "scores", "labels", "attrs"} (numpy)."""
        return self.head.decode(output.preds)


class CameraBEVDet(CameraHeadLosses, BaseModel):
    """LSS / BEVDepth camera detector. Build with :func:`build_camera_bev` or a preset."""

    def __init__(self, *, camera: CameraToBEV, bev_encoder: BEVEncoder, head: CenterHead, depth_loss_weight: float = 3.0):
        super().__init__()
        self.camera, self.bev_encoder, self.head = camera, bev_encoder, head
        self.depth_loss_weight = float(depth_loss_weight)
        self.bev_grid = head.grid
        self.class_names = head.class_names

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``bev``, ``depth`` (camera branch), ``bev_stage{k}`` and ``bev_neck`` (BEV encoder, on
        the pooling grid scaled by the cumulative strides), ``heatmap``, ``reg`` and ``head_shared`` (head grid)."""
        specs = self.camera.feature_specs()
        grid, stride = specs["bev"].grid, 1
        for k, (c, s) in enumerate(zip(self.bev_encoder.channels, self.bev_encoder.strides), start=1):
            stride *= s
            specs[f"bev_stage{k}"] = FeatureSpec(c, "bev", stride, grid=grid.scaled(stride))
        neck_stride = self.bev_encoder.neck_stride
        specs["bev_neck"] = FeatureSpec(self.bev_encoder.out_channels, "bev", neck_stride, grid=self.head.grid)
        specs.update(head_specs(self.head, neck_stride))
        return specs

    def forward(self, batch) -> ModelOutput:
        bev, depth = self.camera(batch)
        feats = {"bev": bev, "depth": depth}
        feats.update(self.bev_encoder(bev))
        preds = self.head(feats["bev_neck"])
        feats.update(self.head.named_feats(preds))
        return ModelOutput(feats=feats, preds=preds)



def build_camera_branch(
    *, image_size: tuple[int, int], grid: BEVGrid, depth_bins: tuple[float, float, float],
    z_range: tuple[float, float] = (-5.0, 3.0), resnet_depth: int = 18, resnet_width: int = 64,
    fpn_channels: int = 256, depth_mid_channels: int = 256, context_channels: int = 80, cam_aware: bool = True,
) -> CameraToBEV:
    """ResNet + FPN16 + LSS view transformer pooling onto ``grid``; ``depth_bins = (dmin, dmax, step)`` m."""
    backbone = ResNet(depth=resnet_depth, width=resnet_width)
    neck = FPN16(in_channels=backbone.out_channels, out_channels=fpn_channels)
    vt = LSSViewTransformer(
        in_channels=fpn_channels, context_channels=context_channels, mid_channels=depth_mid_channels,
        image_size=image_size, stride=FPN16.stride, depth_bins=DepthBins(*depth_bins), grid=grid, z_range=z_range,
        cam_aware=cam_aware,
    )
    return CameraToBEV(backbone=backbone, neck=neck, view_transformer=vt)


def build_camera_bev(
    *, tasks: Sequence[Sequence[str]], class_names: Sequence[str] | None = None, image_size: tuple[int, int],
    grid: BEVGrid, depth_bins: tuple[float, float, float], z_range: tuple[float, float] = (-5.0, 3.0),
    resnet_depth: int = 18, resnet_width: int = 64, fpn_channels: int = 256, depth_mid_channels: int = 256,
    context_channels: int = 80, bev_channels: tuple[int, ...] = (128, 256), bev_blocks: tuple[int, ...] = (2, 2),
    bev_strides: tuple[int, ...] = (1, 2), neck_channels: int = 256, head_channels: int = 64, cam_aware: bool = True,
    depth_loss_weight: float = 3.0, head_kwargs: dict | None = None,
) -> CameraBEVDet:
    """Build a camera BEV detector. ``grid`` is both the pooling grid and (with
    ``bev_strides[0] == 1``) the head grid; ``depth_bins = (dmin, dmax, step)`` in metres."""
    camera = build_camera_branch(
        image_size=image_size, grid=grid, depth_bins=depth_bins, z_range=z_range, resnet_depth=resnet_depth,
        resnet_width=resnet_width, fpn_channels=fpn_channels, depth_mid_channels=depth_mid_channels,
        context_channels=context_channels, cam_aware=cam_aware,
    )
    encoder = BEVEncoder(
        in_channels=context_channels, channels=bev_channels, blocks=bev_blocks, strides=bev_strides,
        out_channels=neck_channels,
    )
    head = CenterHead(
        in_channels=neck_channels, tasks=tasks, class_names=class_names, grid=grid.scaled(bev_strides[0]),
        share_channels=head_channels, head_channels=head_channels, **(head_kwargs or {}),
    )
    return CameraBEVDet(camera=camera, bev_encoder=encoder, head=head, depth_loss_weight=depth_loss_weight)
