"""Tiny models following kd3d's named-feature contract (kd3d.models.base), for distillation tests.

TinyBEVDetector: points -> BEV occupancy (count, mean z) on ``grid`` -> stem ('bev') ->
stage1 ('bev_stage1', stride 1) -> stage2 ('bev_stage2', stride 2) -> neck ('bev_neck') ->
'heatmap' (K) and 'reg' (10). TinySparseNet: voxelised points -> subm conv ('voxel') ->
per-voxel logits ('voxel_logits') and per-key-point features/logits ('point_feats',
'point_logits').
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kd3d.distill.bev_targets import batch_gaussian_heatmaps
from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.specs import FeatureSpec, sparse_spec
from kd3d.ops.spconv import Voxelizer, get_spconv, sparse_tensor, subm_conv3d
from kd3d.structures import BEVGrid
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.sample import Sample, collate


def bev_occupancy(points: list, grid: BEVGrid) -> torch.Tensor:
    """(B, 2, H, W): log(1 + count) and mean z of the points in each cell."""
    maps = []
    for p in points:
        col = ((p[:, 0] - grid.xmin) / grid.dx).floor().long()
        row = ((p[:, 1] - grid.ymin) / grid.dy).floor().long()
        ok = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny)
        key = row[ok] * grid.nx + col[ok]
        n = torch.bincount(key, minlength=grid.nx * grid.ny).float()
        z = torch.bincount(key, weights=p[ok, 2].double(), minlength=grid.nx * grid.ny).float()
        maps.append(torch.stack([torch.log1p(n), z / n.clamp(min=1)]).view(2, grid.ny, grid.nx))
    return torch.stack(maps)


def _block(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class TinyBEVDetector(BaseModel):
    def __init__(self, *, grid: BEVGrid, width: int = 8, num_classes: int = 2, dropout: float = 0.0):
        super().__init__()
        self.bev_grid = grid
        self.stem = _block(2, width)
        self.stage1 = _block(width, width)
        self.stage2 = _block(width, 2 * width, stride=2)
        self.neck = _block(3 * width, 2 * width)
        self.drop = nn.Dropout(dropout)
        self.head = nn.ModuleDict({"heatmap": nn.Conv2d(2 * width, num_classes, 1), "reg": nn.Conv2d(2 * width, 10, 1)})
        self.width, self.num_classes = width, num_classes

    def feature_specs(self):
        g, w = self.bev_grid, self.width
        return {"bev": FeatureSpec(w, "bev", 1, grid=g), "bev_stage1": FeatureSpec(w, "bev", 1, grid=g),
                "bev_stage2": FeatureSpec(2 * w, "bev", 2, grid=g.scaled(2)),
                "bev_neck": FeatureSpec(2 * w, "bev", 1, grid=g),
                "heatmap": FeatureSpec(self.num_classes, "bev", 1, grid=g), "reg": FeatureSpec(10, "bev", 1, grid=g)}

    def forward(self, batch) -> ModelOutput:
        bev = self.stem(bev_occupancy(batch.points, self.bev_grid))
        s1 = self.stage1(bev)
        s2 = self.stage2(s1)
        up = F.interpolate(s2, size=s1.shape[-2:], mode="nearest")
        neck = self.drop(self.neck(torch.cat([s1, up], dim=1)))
        feats = {"bev": bev, "bev_stage1": s1, "bev_stage2": s2, "bev_neck": neck,
                 "heatmap": self.head["heatmap"](neck), "reg": self.head["reg"](neck)}
        return ModelOutput(feats=feats, preds={"heatmap": feats["heatmap"], "reg": feats["reg"]})

    def loss(self, output, batch):
        target = batch_gaussian_heatmaps(batch.gt_boxes, self.bev_grid, min_overlap=0.1)
        heat = output.preds["heatmap"].max(dim=1, keepdim=True).values
        return {"heatmap": F.binary_cross_entropy_with_logits(heat, target),
                "reg": output.preds["reg"].abs().mean() * 1e-3}

    @torch.no_grad()
    def predict(self, output, batch):
        return [{"scores": torch.sigmoid(h).amax().reshape(1).numpy()} for h in output.preds["heatmap"]]


class TinySparseNet(BaseModel):
    """Voxel segmenter on a 0.5 m grid over [-8, 8] x [-8, 8] x [-2, 2]."""

    RANGE = [-8.0, -8.0, -2.0, 8.0, 8.0, 2.0]
    VOXEL = [0.5, 0.5, 0.5]

    def __init__(self, *, width: int = 8, num_classes: int = 4):
        super().__init__()
        get_spconv()
        self.voxelizer = Voxelizer(voxel_size=self.VOXEL, point_range=self.RANGE, max_points_per_voxel=8)
        self.conv = get_spconv().SparseSequential(subm_conv3d(5, width, 3, indice_key="s1"), nn.BatchNorm1d(width),
                                                  nn.ReLU())
        self.cls = nn.Linear(width, num_classes)
        self.width, self.num_classes = width, num_classes

    def feature_specs(self):
        vox = sparse_spec(self.width, point_range=self.RANGE, spatial_shape=self.voxelizer.spatial_shape, stride=1,
                          voxel_size=self.VOXEL)
        return {"voxel": vox, "voxel_logits": sparse_spec(self.num_classes, point_range=self.RANGE,
                                                          spatial_shape=self.voxelizer.spatial_shape, stride=1,
                                                          voxel_size=self.VOXEL),
                "point_feats": FeatureSpec(self.width, "key_point"),
                "point_logits": FeatureSpec(self.num_classes, "key_point")}

    def forward(self, batch) -> ModelOutput:
        key = [s.num_key_points for s in batch.samples]
        voxels, coords, num = self.voxelizer.batch(batch.points)
        mean = voxels.sum(dim=1) / num.clamp(min=1)[:, None].float()
        x = self.conv(sparse_tensor(mean, coords, self.voxelizer.spatial_shape, len(batch.points)))
        # per key point: the feature of its voxel
        feats = []
        for b, (p, k) in enumerate(zip(batch.points, key)):
            c = torch.floor((p[:k, :3] - torch.tensor(self.RANGE[:3])) / torch.tensor(self.VOXEL)).long()
            shape = self.voxelizer.spatial_shape  # Z Y X
            lin = (c[:, 2] * shape[1] + c[:, 1]) * shape[2] + c[:, 0]
            m = x.indices[:, 0] == b
            vi = x.indices[m].long()
            vlin = (vi[:, 1] * shape[1] + vi[:, 2]) * shape[2] + vi[:, 3]
            table = torch.full((shape[0] * shape[1] * shape[2],), -1, dtype=torch.long)
            table[vlin] = torch.arange(len(vlin))
            feats.append(x.features[m][table[lin]])
        pf = torch.cat(feats)
        return ModelOutput(feats={"voxel": x, "voxel_logits": x.replace_feature(self.cls(x.features)),
                                  "point_feats": pf, "point_logits": self.cls(pf)})

    def loss(self, output, batch):
        labels = torch.cat(batch.points_label)
        return {"ce": F.cross_entropy(output.feats["point_logits"], labels, ignore_index=0)}


def make_batch(seed: int = 0, *, num_samples: int = 2, num_points: int = 300, extent: float = 7.5,
               with_labels: bool = True):
    """Synthetic batch: points in [-extent, extent]^2 x [-1.5, 1.5] with two GT boxes per sample."""
    rng = np.random.default_rng(seed)
    samples = []
    for i in range(num_samples):
        pts = np.zeros((num_points, 5), np.float32)
        pts[:, :2] = rng.uniform(-extent, extent, (num_points, 2))
        pts[:, 2] = rng.uniform(-1.5, 1.5, num_points)
        pts[:, 3] = rng.uniform(0, 1, num_points)
        boxes = Boxes3D(np.array([[2.0 + i, 1.0, 0.0, 4.0, 2.0, 1.5, 0.3, 0.0, 0.0],
                                  [-3.0, -2.5 + i, 0.0, 1.0, 1.0, 1.7, 0.0, 0.0, 0.0]]))
        key = num_points - 50
        labels = rng.integers(0, 4, key).astype(np.int64) if with_labels else None
        samples.append(Sample(token=f"tok{seed}_{i}", points=pts, num_key_points=key, gt_boxes=boxes,
                              gt_labels=np.array([0, 1]), gt_attrs=np.array([-1, -1]),
                              gt_num_points=np.array([10, 10]), points_label=labels).validate())
    return collate(samples)
