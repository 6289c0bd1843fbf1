"""``Sample`` (one frame, numpy) and ``Batch`` (collated, torch) containers.

Every loader (nuScenes, KITTI, real or synthetic) returns a :class:`Sample`; transforms map
Sample -> Sample; :func:`collate` builds a :class:`Batch` for the models. Frames and shapes:

Sample
  token            str, sample token (nuScenes) or frame id (KITTI)
  points           (N, 5) float32, LiDAR frame, ``x y z intensity dt`` (dt: seconds between
                   the sweep and the key frame, 0 for key-frame points). Key-frame points come
                   first: ``points[:num_key_points]``.
  num_key_points   int
  points_label     (num_key_points,) int64 lidarseg labels (16-class, 0 = ignore) or None
  gt_boxes         Boxes3D (M) LiDAR frame, with velocities
  gt_labels        (M,) int64 index into the dataset's detection classes
  gt_attrs         (M,) int64 index into NUSC_ATTRIBUTES, -1 for none
  gt_num_points    (M,) int64 LiDAR points inside each box (as annotated)
  images           (NC, H, W, 3) uint8 or None; cam_names: list of NC names
  cam_intrinsics   (NC, 3, 3) float64 pinhole K of the *original* image
  cam2lidar        (NC, 4, 4) float64 camera -> LiDAR (after any BEV augmentation)
  img_aug          (NC, 3, 3) float64 pixel-space matrix of the image augmentation:
                   ``[u' v' 1] = img_aug @ [u v 1]`` (identity when none)
  lidar2ego, ego2global  (4, 4) float64 (ego2global identity for KITTI)
  bev_aug          (4, 4) float64 the BEV augmentation applied to the LiDAR frame
                   (``p_aug = bev_aug @ p``); identity when none
  timestamp        float seconds
  meta             dict of dataset-specific extras (scene name, KITTI calib, difficulty, ...);
                   ``meta["box_meta"]``: dict of per-box arrays (M, ...) aligned with gt_boxes
                   (nuScenes: instance, ann_token, category; KITTI: name, truncation, occlusion,
                   alpha, bbox, difficulty), kept aligned by kd3d.data.transforms
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kd3d.structures.boxes import Boxes3D


def _eye(n: int):
    return field(default_factory=lambda: np.eye(n))


@dataclass
class Sample:
    token: str
    points: np.ndarray
    num_key_points: int
    gt_boxes: Boxes3D = field(default_factory=Boxes3D)
    gt_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gt_attrs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    gt_num_points: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    points_label: np.ndarray | None = None
    images: np.ndarray | None = None
    cam_names: list[str] = field(default_factory=list)
    cam_intrinsics: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    cam2lidar: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4)))
    img_aug: np.ndarray = field(default_factory=lambda: np.zeros((0, 3, 3)))
    lidar2ego: np.ndarray = _eye(4)
    ego2global: np.ndarray = _eye(4)
    bev_aug: np.ndarray = _eye(4)
    timestamp: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "Sample":
        """Check shapes and dtypes; raises ValueError naming the field."""
        p = self.points
        if p.ndim != 2 or p.shape[1] != 5 or p.dtype != np.float32:
            raise ValueError(f"sample {self.token}: points must be (N, 5) float32, got {p.shape} {p.dtype}")
        if not 0 <= self.num_key_points <= p.shape[0]:
            raise ValueError(f"sample {self.token}: num_key_points {self.num_key_points} outside [0, {p.shape[0]}]")
        m = len(self.gt_boxes)
        for name in ("gt_labels", "gt_attrs", "gt_num_points"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"sample {self.token}: {name} must have shape ({m},), got {getattr(self, name).shape}")
        if self.points_label is not None and self.points_label.shape != (self.num_key_points,):
            raise ValueError(
                f"sample {self.token}: points_label must have shape ({self.num_key_points},), "
                f"got {self.points_label.shape}"
            )
        if self.images is not None:
            nc = len(self.cam_names)
            if self.images.ndim != 4 or self.images.shape[0] != nc or self.images.shape[-1] != 3:
                raise ValueError(f"sample {self.token}: images must be ({nc}, H, W, 3), got {self.images.shape}")
            for name, shape in (("cam_intrinsics", (nc, 3, 3)), ("cam2lidar", (nc, 4, 4)), ("img_aug", (nc, 3, 3))):
                if getattr(self, name).shape != shape:
                    raise ValueError(f"sample {self.token}: {name} must be {shape}, got {getattr(self, name).shape}")
        return self


@dataclass
class Batch:
    """Collated samples (torch). Per-sample variable-length fields stay lists.

    points        list[B] of (Ni, 5) float32 tensors
    points_label  list[B] of (Ki,) int64 tensors or None
    gt_boxes      list[B] of (Mi, 9) float32 tensors (Boxes3D layout)
    gt_labels     list[B] of (Mi,) int64; gt_attrs likewise
    images        (B, NC, 3, H, W) float32, normalised (ImageNet mean/std), or None
    cam_intrinsics (B, NC, 3, 3); cam2lidar (B, NC, 4, 4); img_aug (B, NC, 3, 3); float32
    bev_aug       (B, 4, 4) float32
    samples       list[B] of the source Sample objects (numpy, for evaluation and export)
    """

    points: list
    points_label: list
    gt_boxes: list
    gt_labels: list
    gt_attrs: list
    images: Any = None
    cam_intrinsics: Any = None
    cam2lidar: Any = None
    img_aug: Any = None
    bev_aug: Any = None
    samples: list = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.points)

    def to(self, device) -> "Batch":
        def move(x):
            if x is None:
                return None
            if isinstance(x, list):
                return [move(v) for v in x]
            return x.to(device, non_blocking=True)

        return Batch(
            points=move(self.points), points_label=move(self.points_label), gt_boxes=move(self.gt_boxes),
            gt_labels=move(self.gt_labels), gt_attrs=move(self.gt_attrs), images=move(self.images),
            cam_intrinsics=move(self.cam_intrinsics), cam2lidar=move(self.cam2lidar), img_aug=move(self.img_aug),
            bev_aug=move(self.bev_aug), samples=self.samples,
        )


IMAGE_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32) * 255
IMAGE_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32) * 255


def collate(samples: list[Sample]) -> Batch:
    """Collate a list of Samples into a Batch (torch tensors)."""
    import torch

    def t(x, dtype=torch.float32):
        return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype)

    has_images = all(s.images is not None for s in samples) and samples
    images = intr = c2l = aug = None
    if has_images:
        imgs = np.stack([s.images for s in samples]).astype(np.float32)
        imgs = (imgs - IMAGE_MEAN) / IMAGE_STD
        images = torch.from_numpy(np.ascontiguousarray(imgs.transpose(0, 1, 4, 2, 3)))
        intr = t(np.stack([s.cam_intrinsics for s in samples]))
        c2l = t(np.stack([s.cam2lidar for s in samples]))
        aug = t(np.stack([s.img_aug for s in samples]))
    return Batch(
        points=[t(s.points) for s in samples],
        points_label=[None if s.points_label is None else t(s.points_label, torch.int64) for s in samples],
        gt_boxes=[t(s.gt_boxes.data) for s in samples],
        gt_labels=[t(s.gt_labels, torch.int64) for s in samples],
        gt_attrs=[t(s.gt_attrs, torch.int64) for s in samples],
        images=images, cam_intrinsics=intr, cam2lidar=c2l, img_aug=aug,
        bev_aug=t(np.stack([s.bev_aug for s in samples])),
        samples=list(samples),
    )
