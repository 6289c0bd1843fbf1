"""LiDAR-camera fusion detector (BEVFusion-style, the fusion teacher of UniDistill's pairs).

::

    points -> LiDAR encoder (voxel or pillar)      -> 'bev_lidar'  (B, Cl, H, W)
    images -> CameraToBEV (ResNet, FPN, LSS pool)  -> 'bev_camera' (B, Cc, H, W)   same BEVGrid
    concat -> ConvFuser (3x3 conv + BN + ReLU)     -> 'bev'        (B, Cf, H, W)
    -> SECOND backbone -> 'bev_stage{k}' -> SECOND FPN -> 'bev_neck' -> CenterHead -> 'heatmap', 'reg', 'head_shared'

Other named features: ``voxel`` (from the LiDAR encoder), ``depth`` (B*NC, D, h, w). The
camera branch pools directly onto the LiDAR encoder's ``bev_grid`` (checked at construction),
so no resampling is involved. ``loss()`` = CenterHead losses (+ depth BCE from projected LiDAR
when ``depth_loss_weight > 0``).
"""
from __future__ import annotations

import torch
from torch import nn

from kd3d.models.backbones.second import SECONDBackbone
from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.camera.student import CameraHeadLosses, CameraToBEV
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.lidar.detector import backbone_specs
from kd3d.models.necks.second_fpn import SECONDFPN
from kd3d.models.specs import FeatureSpec


class ConvFuser(nn.Module):
    """cat([lidar (B, Cl, H, W), camera (B, Cc, H, W)], 1) -> 3x3 conv + BN + ReLU -> (B, out_channels, H, W)."""

    def __init__(self, *, lidar_channels: int, camera_channels: int, out_channels: int):
        super().__init__()
        self.lidar_channels, self.camera_channels = lidar_channels, camera_channels
        self.fuse = nn.Sequential(
            nn.Conv2d(lidar_channels + camera_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        )
        self.out_channels = out_channels

    def forward(self, lidar: torch.Tensor, camera: torch.Tensor) -> torch.Tensor:
        if lidar.shape[1] != self.lidar_channels or camera.shape[1] != self.camera_channels:
            raise ValueError(f"ConvFuser: expected {self.lidar_channels} LiDAR + {self.camera_channels} camera channels, "
                             f"got {tuple(lidar.shape)} and {tuple(camera.shape)}")
        if lidar.shape[-2:] != camera.shape[-2:] or lidar.shape[0] != camera.shape[0]:
            raise ValueError(f"ConvFuser: LiDAR map {tuple(lidar.shape)} and camera map {tuple(camera.shape)} differ "
                             "in batch or BEV size (they must share one BEVGrid)")
        return self.fuse(torch.cat([lidar, camera], 1))


class FusionCenterPoint(CameraHeadLosses, BaseModel):
    """Built modules: ``lidar_encoder`` (points list -> {"bev", "voxel"?}, with ``bev_grid`` and
    ``bev_channels``), ``camera`` (:class:`CameraToBEV` pooling onto the same grid), ``fuser``,
    ``backbone``, ``neck``, ``head`` (on ``lidar_encoder.bev_grid`` scaled by ``neck.stride``)."""

    def __init__(self, *, lidar_encoder: nn.Module, camera: CameraToBEV, fuser: ConvFuser, backbone: SECONDBackbone,
                 neck: SECONDFPN, head: CenterHead, depth_loss_weight: float = 0.0):
        super().__init__()
        grid = lidar_encoder.bev_grid
        cam_grid = camera.view_transformer.grid
        if cam_grid.shape != grid.shape or any(
            abs(getattr(cam_grid, k) - getattr(grid, k)) > 1e-6 for k in ("xmin", "ymin", "dx", "dy")
        ):
            raise ValueError(f"FusionCenterPoint: camera pools onto {cam_grid}, LiDAR encoder map is on {grid}; "
                             "build the camera branch with grid=lidar_encoder.bev_grid")
        expected = grid.scaled(neck.stride)
        if head.grid.shape != expected.shape or abs(head.grid.dx - expected.dx) > 1e-6:
            raise ValueError(f"FusionCenterPoint: head grid {head.grid} != encoder grid x neck stride {neck.stride}: {expected}")
        if fuser.lidar_channels != lidar_encoder.bev_channels or fuser.camera_channels != camera.out_channels:
            raise ValueError(f"FusionCenterPoint: fuser expects {fuser.lidar_channels}+{fuser.camera_channels} channels, "
                             f"branches give {lidar_encoder.bev_channels}+{camera.out_channels}")
        self.lidar_encoder, self.camera, self.fuser = lidar_encoder, camera, fuser
        self.backbone, self.neck, self.head = backbone, neck, head
        self.depth_loss_weight = float(depth_loss_weight)
        self.bev_grid = head.grid
        self.class_names = head.class_names

    def load_lidar_detector(self, state_dict: dict) -> list[str]:
        """Initialise from a trained LiDAR CenterPoint (:class:`kd3d.models.lidar.LidarCenterPoint`
        state dict, e.g. ``torch.load(ckpt, weights_only=True)["model"]``): ``encoder.*`` goes to
        ``lidar_encoder.*``; ``backbone.*``, ``neck.*`` and ``head.*`` load where shapes agree (they
        do for presets of the same scale and width, since the fuser keeps the LiDAR channel count).
        Returns the keys of this model left untouched (camera branch, fuser, ...)."""
        own = self.state_dict()
        mapped = {}
        for k, v in state_dict.items():
            name = "lidar_encoder." + k[len("encoder."):] if k.startswith("encoder.") else k
            if name not in own:
                raise ValueError(f"load_lidar_detector: key {k!r} has no counterpart {name!r} in the fusion model")
            if own[name].shape != v.shape:
                raise ValueError(f"load_lidar_detector: {k!r} has shape {tuple(v.shape)}, fusion model expects "
                                 f"{tuple(own[name].shape)} (different scale or width?)")
            mapped[name] = v
        self.load_state_dict(mapped, strict=False)
        return [k for k in own if k not in mapped]

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """The LiDAR encoder's features (its ``bev`` as ``bev_lidar``), the camera branch's
        ``bev`` (as ``bev_camera``) and ``depth``, the fused ``bev`` and the stages, neck and head."""
        lidar = self.lidar_encoder.feature_specs()
        cam = self.camera.feature_specs()
        specs = {k: v for k, v in lidar.items() if k != "bev"}
        bev = lidar["bev"]
        specs.update(bev_lidar=bev, bev_camera=FeatureSpec(cam["bev"].channels, "bev", bev.stride, grid=bev.grid),
                     depth=cam["depth"], bev=FeatureSpec(self.fuser.out_channels, "bev", bev.stride, grid=bev.grid))
        return backbone_specs(specs, self.backbone, self.neck, self.head)

    def forward(self, batch) -> ModelOutput:
        if not batch.points:
            raise ValueError("FusionCenterPoint: batch.points is empty (need a list of (N, 5) tensors)")
        device = next(self.parameters()).device
        lidar = dict(self.lidar_encoder([p.to(device) for p in batch.points]))
        bev_camera, depth = self.camera(batch)
        feats = {k: v for k, v in lidar.items() if k != "bev"}
        feats.update(bev_lidar=lidar["bev"], bev_camera=bev_camera, depth=depth)
        feats["bev"] = self.fuser(lidar["bev"], bev_camera)
        stages = self.backbone(feats["bev"])
        for k, s in enumerate(stages, start=1):
            feats[f"bev_stage{k}"] = s
        feats["bev_neck"] = self.neck(stages)
        preds = self.head(feats["bev_neck"])
        feats.update(self.head.named_feats(preds))
        return ModelOutput(feats=feats, preds=preds)

