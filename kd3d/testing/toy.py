"""A tiny BEV detector, an in-memory dataset and a centre-distance AP: the engine's test rig.

They implement the real contracts (:class:`~kd3d.models.base.BaseModel`, datasets of
:class:`~kd3d.structures.sample.Sample`, evaluators returning a metrics dict), run in
milliseconds on a CPU and include dropout, so the exact-resume and DDP tests exercise the RNG
and gradient paths the real models use.

They are not registered in the product's tables; configs name them by path:
``model.name = TOY_MODEL``, ``data.dataset = TOY_DATASET``, ``eval.evaluator = TOY_EVALUATOR``.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kd3d.models.base import BaseModel, ModelOutput
from kd3d.models.specs import FeatureSpec
from kd3d.structures.bev import BEVGrid
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.sample import Sample

CAR_SIZE = (4.5, 1.9, 1.6)

TOY_MODEL = "kd3d.testing.toy:make_toy_model"
TOY_DATASET = "kd3d.testing.toy:make_toy_dataset"
TOY_EVALUATOR = "kd3d.testing.toy:toy_evaluate"


class ToyDataset:
    """``num_samples`` synthetic frames: 1-3 cars (class 0) on a flat ground, LiDAR frame.

    points: (N, 5) float32 ``x y z i dt``: 60 points inside each car plus 150 ground points.
    """

    class_names = ("car",)

    def __init__(self, num_samples: int = 16, *, extent: float = 14.0, seed: int = 0, split: str = "train",
                 augment: bool | None = None):
        self.augment = split == "train" if augment is None else augment
        if num_samples <= 0:
            raise ValueError(f"ToyDataset: num_samples must be positive, got {num_samples}")
        rng = np.random.default_rng(seed + (0 if split == "train" else 10_000))
        self.samples = [self._make(rng, f"toy_{split}_{i:04d}", extent) for i in range(num_samples)]

    @staticmethod
    def _make(rng, token: str, extent: float) -> Sample:
        m = int(rng.integers(1, 4))
        xy = rng.uniform(-extent, extent, size=(m, 2))
        yaw = rng.uniform(-np.pi, np.pi, size=(m, 1))
        l, w, h = CAR_SIZE
        boxes = np.concatenate([xy, np.full((m, 1), -0.9), np.tile([[l, w, h]], (m, 1)), yaw, np.zeros((m, 2))], 1)
        pts = []
        for b in boxes:
            local = rng.uniform(-0.5, 0.5, size=(60, 3)) * [l, w, h]
            c, s = np.cos(b[6]), np.sin(b[6])
            xyz = local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + b[:3]
            pts.append(np.concatenate([xyz, rng.uniform(0.2, 1.0, (60, 1)), np.zeros((60, 1))], 1))
        ground = np.concatenate([rng.uniform(-extent - 2, extent + 2, (150, 2)), np.full((150, 1), -1.7),
                                 rng.uniform(0, 0.2, (150, 1)), np.zeros((150, 1))], 1)
        points = np.concatenate(pts + [ground]).astype(np.float32)
        return Sample(token=token, points=points, num_key_points=len(points), gt_boxes=Boxes3D(boxes),
                      gt_labels=np.zeros(m, np.int64), gt_attrs=np.full(m, -1, np.int64),
                      gt_num_points=np.full(m, 60, np.int64), meta={"scene": "toy"}).validate()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:
        s = self.samples[index]
        # a random flip along y, as a stand-in for real augmentations (uses numpy's global RNG)
        if self.augment and np.random.rand() < 0.5:
            pts = s.points.copy()
            pts[:, 1] *= -1
            boxes = s.gt_boxes.data.copy()
            boxes[:, 1] *= -1
            boxes[:, 6] *= -1
            s = Sample(**{**s.__dict__, "points": pts, "gt_boxes": Boxes3D(boxes)})
        return s


def make_toy_dataset(*, split: str, num_samples: int = 16, seed: int = 0, augment: bool | None = None,
                     **_) -> ToyDataset:
    """Dataset factory (``data.dataset = TOY_DATASET``); ``root``/``version``/``train`` are ignored."""
    return ToyDataset(num_samples, seed=seed, split=split, augment=augment)


class ToyBEVDetector(BaseModel):
    """Occupancy pillars -> two 3x3 convs (with dropout) -> one-class heatmap.

    feats: ``bev`` (B, 2, H, W) log point count and mean z per cell; ``bev_neck`` (B, C, H, W);
    ``heatmap`` (B, 1, H, W) logits. Boxes are decoded at heatmap peaks with the fixed car size.
    """

    class_names = ("car",)

    def __init__(self, *, channels: int = 16, extent: float = 16.0, cell: float = 1.0, dropout: float = 0.1):
        super().__init__()
        self.bev_grid = BEVGrid(-extent, -extent, extent, extent, cell, cell)
        self.conv1 = nn.Conv2d(2, channels, 3, padding=1)
        self.drop = nn.Dropout2d(dropout)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.head = nn.Conv2d(channels, 1, 1)
        nn.init.constant_(self.head.bias, -2.0)
        self.channels = channels

    def feature_specs(self) -> dict[str, FeatureSpec]:
        """``bev`` (2: log count, mean z), ``bev_neck`` (C) and ``heatmap`` (1), all on ``bev_grid``."""
        g = self.bev_grid
        return {"bev": FeatureSpec(2, "bev", 1, grid=g), "bev_neck": FeatureSpec(self.channels, "bev", 1, grid=g),
                "heatmap": FeatureSpec(1, "bev", 1, grid=g)}

    def _scatter(self, points: torch.Tensor) -> torch.Tensor:
        g = self.bev_grid
        H, W = g.shape
        col = ((points[:, 0] - g.xmin) / g.dx).floor().long()
        row = ((points[:, 1] - g.ymin) / g.dy).floor().long()
        keep = (col >= 0) & (col < W) & (row >= 0) & (row < H)
        flat = (row * W + col)[keep]
        count = torch.zeros(H * W, device=points.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float32))
        zsum = torch.zeros(H * W, device=points.device).index_add_(0, flat, points[keep, 2])
        mean_z = zsum / count.clamp(min=1)
        return torch.stack([torch.log1p(count), mean_z]).view(2, H, W)

    def forward(self, batch) -> ModelOutput:
        bev = torch.stack([self._scatter(p) for p in batch.points])
        x = F.relu(self.conv1(bev))
        x = F.relu(self.conv2(self.drop(x)))
        return ModelOutput(feats={"bev": bev, "bev_neck": x, "heatmap": self.head(x)},
                           preds={"heatmap": self.head(x)})

    def targets(self, batch, device) -> torch.Tensor:
        """(B, 1, H, W) 1 at the cell of every GT centre."""
        g = self.bev_grid
        H, W = g.shape
        t = torch.zeros(len(batch), 1, H, W, device=device)
        for b, boxes in enumerate(batch.gt_boxes):
            col = ((boxes[:, 0] - g.xmin) / g.dx).floor().long()
            row = ((boxes[:, 1] - g.ymin) / g.dy).floor().long()
            ok = (col >= 0) & (col < W) & (row >= 0) & (row < H)
            t[b, 0, row[ok], col[ok]] = 1.0
        return t

    def loss(self, output: ModelOutput, batch) -> dict[str, torch.Tensor]:
        logits = output.preds["heatmap"]
        t = self.targets(batch, logits.device)
        w = 1.0 + 20.0 * t
        return {"heatmap": F.binary_cross_entropy_with_logits(logits, t, weight=w)}

    @torch.no_grad()
    def predict(self, output: ModelOutput, batch, *, score_thresh: float = 0.05, top_k: int = 20) -> list[dict]:
        heat = output.preds["heatmap"].sigmoid()
        peaks = heat * (heat == F.max_pool2d(heat, 3, 1, 1))
        g = self.bev_grid
        H, W = g.shape
        results = []
        for b in range(heat.shape[0]):
            scores, idx = peaks[b, 0].flatten().topk(min(top_k, H * W))
            keep = scores > score_thresh
            scores, idx = scores[keep].cpu().numpy(), idx[keep].cpu().numpy()
            xy = g.cell_to_xy(np.stack([idx % W + 0.5, idx // W + 0.5], 1))
            n = len(scores)
            data = np.concatenate([xy, np.full((n, 1), -0.9), np.tile([CAR_SIZE], (n, 1)), np.zeros((n, 3))], 1)
            results.append({"boxes": Boxes3D(data.reshape(n, 9)), "scores": scores.astype(np.float64),
                            "labels": np.zeros(n, np.int64), "attrs": np.full(n, -1, np.int64)})
        return results


def make_toy_model(**kwargs) -> ToyBEVDetector:
    """Model factory (``model.name = TOY_MODEL``)."""
    return ToyBEVDetector(**kwargs)


def toy_evaluate(results: dict, dataset, out_dir=None, *, dist_thresh: float = 2.0) -> dict[str, float]:
    """Centre-distance AP over all samples (greedy by score, match if xy distance < ``dist_thresh``),
    101-point interpolated precision as in nuScenes (no envelope, no score clipping)."""
    gts = {s.token: s.gt_boxes.data[:, :2] for s in dataset.samples}
    missing = sorted(set(gts) - set(results))
    if missing:
        raise ValueError(f"toy_evaluate: no results for {len(missing)} samples, e.g. {missing[:3]}")
    n_gt = sum(len(v) for v in gts.values())
    dets = [(float(sc), tok, xy) for tok, r in results.items() for sc, xy in zip(r["scores"], r["boxes"].data[:, :2])]
    dets.sort(key=lambda d: -d[0])
    taken = {tok: np.zeros(len(v), bool) for tok, v in gts.items()}
    tp = np.zeros(len(dets))
    for i, (_, tok, xy) in enumerate(dets):
        d = np.linalg.norm(gts[tok] - xy, axis=1)
        d[taken[tok]] = np.inf
        if len(d) and d.min() < dist_thresh:
            taken[tok][d.argmin()] = True
            tp[i] = 1
    if not len(dets) or n_gt == 0:
        return {"ap": 0.0, "recall": 0.0, "num_dets": float(len(dets))}
    ctp = np.cumsum(tp)
    prec, rec = ctp / np.arange(1, len(dets) + 1), ctp / n_gt
    prec_i = np.interp(np.linspace(0, 1, 101), rec, prec, right=0)
    return {"ap": float(prec_i.mean()), "recall": float(rec[-1]), "num_dets": float(len(dets))}
