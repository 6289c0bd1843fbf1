"""LiDAR semantic segmenter (sparse UNet + point branch) with presets.

Input: :class:`kd3d.structures.sample.Batch` (``points``: list[B] of (Ni, 5) float32, LiDAR
frame, key-frame points first; ``points_label``: list[B] of (Ki,) int64 16-class labels,
0 = ignore). All points (sweeps included) feed the network; loss and predictions cover the
``Ki`` key-frame points.

Named features: ``voxel`` SparseConvTensor (V, C) decoder output at the voxel resolution,
``voxel_bottleneck`` deepest encoder level, ``point_feats`` (N, C) and ``point_logits`` (N, 17)
for every input point (samples concatenated in batch order, see ``preds["point_offsets"]``),
``voxel_logits`` SparseConvTensor (V, 17). Logit channel k = lidarseg class k (0 = ignore,
never predicted).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F

from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.heads.seg_head import SegHead
from kd3d.models.seg.sparse_unet import SparseUNet, voxelize_points
from kd3d.models.specs import FeatureSpec, sparse_spec
from kd3d.structures.classes import NUSC_LIDARSEG_CLASSES

SEG_SCALES = {
    "nuscenes": {"point_range": (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), "voxel_size": 0.1},
    "synthetic": {"point_range": (-51.2, -51.2, -5.0, 51.2, 51.2, 3.0), "voxel_size": 0.2},
}


def _key_counts(batch) -> list[int]:
    counts = []
    for b, p in enumerate(batch.points):
        if batch.samples and b < len(batch.samples):
            counts.append(int(batch.samples[b].num_key_points))
        elif batch.points_label and batch.points_label[b] is not None:
            counts.append(int(batch.points_label[b].shape[0]))
        else:
            counts.append(int(p.shape[0]))
    return counts


class LidarSegmenter(BaseModel):
    """unet: built :class:`SparseUNet`; head: built :class:`SegHead`; voxel_size (cubic, metres)
    and point_range as used to build the UNet; voxel_loss_weight: weight of the voxel CE."""

    def __init__(self, *, unet: SparseUNet, head: SegHead, voxel_size: float, point_range: Sequence[float],
                 voxel_loss_weight: float = 1.0, class_names: Sequence[str] = NUSC_LIDARSEG_CLASSES):
        super().__init__()
        self.unet, self.head = unet, head
        self.voxel_size = (float(voxel_size),) * 3
        self.point_range = tuple(float(v) for v in point_range)
        self.voxel_loss_weight = float(voxel_loss_weight)
        self.class_names = tuple(class_names)
        if head.num_classes != len(self.class_names):
            raise ValueError(f"LidarSegmenter: head has {head.num_classes} classes, class_names {len(self.class_names)}")

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``voxel``/``voxel_logits`` on the cubic voxel grid, ``voxel_bottleneck`` on the
        deepest UNet level, ``point_feats``/``point_logits`` one row per input point."""
        unet, pr = self.unet, self.point_range
        voxel = sparse_spec(unet.out_channels, point_range=pr, spatial_shape=unet.spatial_shape, stride=1,
                            voxel_size=self.voxel_size)
        return {"voxel": voxel,
                "voxel_bottleneck": sparse_spec(unet.channels[-1], point_range=pr, spatial_shape=unet.bottleneck_shape,
                                                stride=unet.bottleneck_stride),
                "point_feats": FeatureSpec(unet.out_channels, "point"),
                "point_logits": FeatureSpec(self.head.num_classes, "point"),
                "voxel_logits": dataclasses.replace(voxel, channels=self.head.num_classes)}

    def forward(self, batch) -> ModelOutput:
        device = next(self.parameters()).device
        points = [p.to(device) for p in batch.points]
        coords, p2v, vmean, shape = voxelize_points(points, self.voxel_size, self.point_range)
        if tuple(shape) != self.unet.spatial_shape:
            raise ValueError(f"LidarSegmenter: voxel grid {shape} != UNet spatial_shape {self.unet.spatial_shape}")
        out = self.unet(vmean, coords, len(points))
        allp = torch.cat(points)
        centre = (coords[p2v, 1:].flip(1).to(allp.dtype) + 0.5) * self.voxel_size[0] + allp.new_tensor(self.point_range[:3])
        point_inputs = torch.cat([allp, allp[:, :3] - centre], dim=1)
        pf, pl, vl = self.head(point_inputs, out["voxel"].features, p2v)
        offsets = [0]
        for p in points:
            offsets.append(offsets[-1] + p.shape[0])
        feats = {"voxel": out["voxel"], "voxel_bottleneck": out["bottleneck"], "point_feats": pf,
                 "point_logits": pl, "voxel_logits": out["voxel"].replace_feature(vl)}
        preds = {"point_logits": pl, "voxel_logits": vl, "point2voxel": p2v, "point_offsets": offsets,
                 "num_key_points": _key_counts(batch)}
        return ModelOutput(feats=feats, preds=preds)

    def _key_labels(self, output, batch):
        idx, labels = [], []
        off, nk = output.preds["point_offsets"], output.preds["num_key_points"]
        for b, lab in enumerate(batch.points_label):
            if lab is None:
                raise ValueError(f"LidarSegmenter.loss: batch.points_label[{b}] is None (need (K,) int64 labels)")
            if lab.shape[0] != nk[b]:
                raise ValueError(f"LidarSegmenter.loss: points_label[{b}] has {lab.shape[0]} labels for "
                                 f"{nk[b]} key-frame points")
            idx.append(torch.arange(off[b], off[b] + nk[b]))
            labels.append(lab)
        dev = output.preds["point_logits"].device
        return torch.cat(idx).to(dev), torch.cat(labels).to(dev).long()

    def loss(self, output: ModelOutput, batch) -> dict[str, torch.Tensor]:
        """{"point_ce": CE over key points (ignore 0), "voxel_ce": weight * CE over voxels whose
        label is the most frequent non-ignore label of their key points}."""
        idx, labels = self._key_labels(output, batch)
        pl, vl = output.preds["point_logits"], output.preds["voxel_logits"]
        K = pl.shape[1]
        if labels.numel() and (labels.min() < 0 or labels.max() >= K):
            raise ValueError(f"LidarSegmenter.loss: labels must be in [0, {K}), got [{labels.min()}, {labels.max()}]")
        zero = pl.sum() * 0.0
        point_ce = F.cross_entropy(pl[idx], labels, ignore_index=0) if (labels > 0).any() else zero
        hist = torch.zeros((vl.shape[0], K), device=vl.device)
        hist.index_add_(0, output.preds["point2voxel"][idx], F.one_hot(labels, K).float())
        hist[:, 0] = 0
        vlab = torch.where(hist.sum(1) > 0, hist.argmax(1), torch.zeros_like(hist[:, 0], dtype=torch.long))
        voxel_ce = F.cross_entropy(vl, vlab, ignore_index=0) if (vlab > 0).any() else zero
        return {"point_ce": point_ce, "voxel_ce": self.voxel_loss_weight * voxel_ce}

    @torch.no_grad()
    def predict(self, output: ModelOutput, batch=None) -> list[dict]:
        """Per sample {"point_labels": (num_key_points,) int64 in 1..16} (numpy)."""
        pl = output.preds["point_logits"]
        labels = pl[:, 1:].argmax(1) + 1
        off, nk = output.preds["point_offsets"], output.preds["num_key_points"]
        return [{"point_labels": labels[off[b]:off[b] + nk[b]].cpu().numpy().astype("int64")} for b in range(len(nk))]


def sparse_unet_seg(*, scale: str = "synthetic", width: float = 1.0, point_range: Sequence[float] | None = None,
                    voxel_size: float | None = None, base_channels: Sequence[int] = (32, 64, 128, 256),
                    voxel_loss_weight: float = 1.0) -> LidarSegmenter:
    """Sparse-UNet segmenter preset.

    scale: ``"synthetic"`` (0.2 m voxels) or ``"nuscenes"`` (0.1 m), range x/y +-51.2, z -5..3;
    width: channel multiplier (1.0 teacher, 0.5 PVD student); point_range, voxel_size (cubic,
    metres), base_channels (per UNet level), voxel_loss_weight override the preset.
    17 output classes (nuScenes-lidarseg 16 + ignore 0).
    """
    if scale not in SEG_SCALES:
        raise ValueError(f"sparse_unet_seg: scale must be one of {sorted(SEG_SCALES)}, got {scale!r}")
    s = SEG_SCALES[scale]
    pr = tuple(point_range or s["point_range"])
    vs = float(voxel_size or s["voxel_size"])
    shape = [int(round((pr[i + 3] - pr[i]) / vs)) for i in (2, 1, 0)]
    unet = SparseUNet(in_channels=5, spatial_shape=shape, base_channels=base_channels, width=width)
    head = SegHead(point_in_channels=8, voxel_channels=unet.out_channels, num_classes=len(NUSC_LIDARSEG_CLASSES))
    return LidarSegmenter(unet=unet, head=head, voxel_size=vs, point_range=pr, voxel_loss_weight=voxel_loss_weight)
