"""Sample -> Sample transforms (augmentation and filtering), composable with :class:`Compose`.

BEV transforms (rotation about z, uniform scale, flips, translation) are one 4x4 matrix ``M``
acting on the LiDAR frame: points ``p' = M p``, boxes (centres, headings, velocities; sizes by the
scale), ``cam2lidar' = M @ cam2lidar`` and ``bev_aug' = M @ bev_aug``. Cameras therefore stay
aligned: ``K @ inv(cam2lidar') @ p'`` is the same pixel as before the transform.

Image transforms update ``img_aug`` (pixel-space 3x3, continuous coordinates where pixel ``i``
spans ``[i, i+1)``): a pixel ``(u, v)`` of the original image is at ``img_aug @ [u, v, 1]`` in
the transformed one.

Transforms never modify their input Sample's arrays in place (they return a shallow copy).

Randomness: every random transform owns a ``numpy.random.Generator`` seeded by ``seed``.
:meth:`Compose.reseed` (called by :func:`seed_worker` in DataLoader workers) gives each worker its
own stream, so workers do not repeat each other's augmentations.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Sequence

import numpy as np

from kd3d.structures.geometry import rotation_z
from kd3d.structures.sample import Sample


def select_boxes(sample: Sample, mask: np.ndarray) -> Sample:
    """Keep the boxes where ``mask`` (M,) is true, with labels, attrs, counts and ``meta['box_meta']``."""
    mask = np.asarray(mask)
    sample = replace(sample)
    sample.gt_boxes = sample.gt_boxes[mask]
    sample.gt_labels = sample.gt_labels[mask]
    sample.gt_attrs = sample.gt_attrs[mask]
    sample.gt_num_points = sample.gt_num_points[mask]
    if "box_meta" in sample.meta:
        sample.meta = dict(sample.meta)
        sample.meta["box_meta"] = {k: np.asarray(v)[mask] for k, v in sample.meta["box_meta"].items()}
    return sample


def select_points(sample: Sample, key_mask: np.ndarray, sweep_mask: np.ndarray) -> Sample:
    """Keep points by separate masks over the key-frame part and the sweep part."""
    nk = sample.num_key_points
    sample = replace(sample)
    sample.points = np.concatenate([sample.points[:nk][key_mask], sample.points[nk:][sweep_mask]], axis=0)
    if sample.points_label is not None:
        sample.points_label = sample.points_label[key_mask]
    sample.num_key_points = int(np.count_nonzero(key_mask))
    return sample


def apply_bev_transform(sample: Sample, matrix: np.ndarray, size_scale: float = 1.0) -> Sample:
    """Apply a 4x4 LiDAR-frame transform ``matrix`` (z-rotation x uniform scale x flips +
    translation) to points, boxes, cam2lidar and bev_aug; ``size_scale`` scales box sizes."""
    m = np.asarray(matrix, np.float64)
    sample = replace(sample)
    pts = sample.points.copy()
    pts[:, :3] = (pts[:, :3].astype(np.float64) @ m[:3, :3].T + m[:3, 3]).astype(np.float32)
    sample.points = pts
    boxes = sample.gt_boxes.transform(m)
    if size_scale != 1.0:
        boxes.data[:, 3:6] *= size_scale
    sample.gt_boxes = boxes
    if len(sample.cam2lidar):
        sample.cam2lidar = m[None] @ sample.cam2lidar
    sample.bev_aug = m @ sample.bev_aug
    return sample


class Compose:
    """Apply transforms in order. ``reseed(seed)`` reseeds every member that has ``reseed``."""

    def __init__(self, transforms: Sequence[Callable[[Sample], Sample]]):
        self.transforms = list(transforms)

    def __call__(self, sample: Sample) -> Sample:
        for t in self.transforms:
            sample = t(sample)
        return sample

    def reseed(self, seed) -> None:
        """``seed``: int or sequence of ints; member ``i`` gets its own stream derived from ``(seed, i)``."""
        base = [int(v) for v in np.atleast_1d(seed)]
        for i, t in enumerate(self.transforms):
            if hasattr(t, "reseed"):
                t.reseed(base + [0x6B64, i])  # tag: never equal to a plain integer seed


class _Random:
    def __init__(self, seed: int | None):
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed) -> None:
        self.rng = np.random.default_rng(seed)


class GlobalRotScaleTrans(_Random):
    """Random rotation about z (uniform in ``rot_range`` rad), uniform scale (in ``scale_range``)
    and translation (normal, ``trans_std`` per axis, metres)."""

    def __init__(self, rot_range=(-0.3925, 0.3925), scale_range=(0.95, 1.05), trans_std=(0.0, 0.0, 0.0),
                 *, seed: int | None = None):
        super().__init__(seed)
        self.rot_range, self.scale_range, self.trans_std = rot_range, scale_range, np.asarray(trans_std, float)

    def __call__(self, sample: Sample) -> Sample:
        angle = self.rng.uniform(*self.rot_range)
        scale = self.rng.uniform(*self.scale_range)
        trans = self.rng.normal(size=3) * self.trans_std
        m = np.eye(4)
        m[:3, :3] = scale * rotation_z(angle)
        m[:3, 3] = trans
        return apply_bev_transform(sample, m, size_scale=scale)


class RandomFlip3D(_Random):
    """Mirror across the x axis (y -> -y) with prob ``p_x``, across the y axis (x -> -x) with ``p_y``."""

    def __init__(self, p_x: float = 0.5, p_y: float = 0.0, *, seed: int | None = None):
        super().__init__(seed)
        self.p_x, self.p_y = p_x, p_y

    def __call__(self, sample: Sample) -> Sample:
        m = np.eye(4)
        if self.rng.random() < self.p_x:
            m[1, 1] = -1
        if self.rng.random() < self.p_y:
            m[0, 0] = -1
        return apply_bev_transform(sample, m) if not np.allclose(m, np.eye(4)) else sample


class PointRangeFilter:
    """Keep points inside ``[xmin, ymin, zmin, xmax, ymax, zmax]`` (min inclusive, max exclusive)."""

    def __init__(self, point_range: Sequence[float]):
        if len(point_range) != 6:
            raise ValueError(f"point_range must have 6 values [xmin ymin zmin xmax ymax zmax], got {point_range}")
        self.lo, self.hi = np.asarray(point_range[:3], np.float32), np.asarray(point_range[3:], np.float32)

    def __call__(self, sample: Sample) -> Sample:
        inside = ((sample.points[:, :3] >= self.lo) & (sample.points[:, :3] < self.hi)).all(axis=1)
        nk = sample.num_key_points
        return select_points(sample, inside[:nk], inside[nk:])


class BoxRangeFilter:
    """Keep boxes whose centre is inside ``xy_range`` [xmin, ymin, xmax, ymax] (or a 6-value point
    range), that have at least ``min_points`` annotated points, and a label >= 0."""

    def __init__(self, xy_range: Sequence[float], min_points: int = 0):
        r = list(xy_range)
        if len(r) == 6:
            r = [r[0], r[1], r[3], r[4]]
        if len(r) != 4:
            raise ValueError(f"xy_range must have 4 (or 6) values, got {xy_range}")
        self.xy_range, self.min_points = r, min_points

    def __call__(self, sample: Sample) -> Sample:
        mask = sample.gt_boxes.in_range(self.xy_range) & (sample.gt_num_points >= self.min_points)
        return select_boxes(sample, mask & (sample.gt_labels >= 0))


class PointShuffle(_Random):
    """Shuffle the key-frame points (with their labels) and the sweep points, each part in place."""

    def __init__(self, *, seed: int | None = None):
        super().__init__(seed)

    def __call__(self, sample: Sample) -> Sample:
        nk = sample.num_key_points
        sample = replace(sample)
        pk = self.rng.permutation(nk)
        ps = self.rng.permutation(len(sample.points) - nk)
        sample.points = np.concatenate([sample.points[:nk][pk], sample.points[nk:][ps]], axis=0)
        if sample.points_label is not None:
            sample.points_label = sample.points_label[pk]
        return sample


class ImageResizeCrop(_Random):
    """Resize every camera image by a factor drawn from ``resize_range`` (relative to
    ``final_size``/original), crop a ``final_size`` (H, W) window (bottom-aligned vertically, like
    LSS/BEVDet, random or centred horizontally) and optionally flip horizontally with ``p_flip``.
    Updates ``img_aug``. The base scale is the larger of ``final_size / original`` over H and W
    (the resized image covers the crop); ``resize_range`` is added to it."""

    def __init__(self, final_size: tuple[int, int], resize_range=(0.0, 0.0), *, random_crop: bool = False,
                 p_flip: float = 0.0, seed: int | None = None):
        super().__init__(seed)
        self.final_size, self.resize_range = tuple(final_size), resize_range
        self.random_crop, self.p_flip = random_crop, p_flip

    def __call__(self, sample: Sample) -> Sample:
        if sample.images is None:
            raise ValueError(f"sample {sample.token}: ImageResizeCrop needs images (load_images=True)")
        from PIL import Image

        nc, h, w, _ = sample.images.shape
        fh, fw = self.final_size
        scale = max(fh / h, fw / w) + self.rng.uniform(*self.resize_range)
        rh, rw = int(round(h * scale)), int(round(w * scale))
        sx, sy = rw / w, rh / h
        x0 = int(self.rng.integers(0, max(rw - fw, 0) + 1)) if self.random_crop else max(rw - fw, 0) // 2
        y0 = max(rh - fh, 0)
        flip = self.rng.random() < self.p_flip
        a = np.array([[sx, 0, -x0], [0, sy, -y0], [0, 0, 1]], np.float64)
        if flip:
            a = np.array([[-1, 0, fw], [0, 1, 0], [0, 0, 1]], np.float64) @ a
        out = np.zeros((nc, fh, fw, 3), np.uint8)
        for i in range(nc):
            im = np.asarray(Image.fromarray(sample.images[i]).resize((rw, rh), Image.BILINEAR))
            crop = im[y0:y0 + fh, x0:x0 + fw]
            out[i, : crop.shape[0], : crop.shape[1]] = crop
            if flip:
                out[i] = out[i, :, ::-1]
        sample = replace(sample, images=out)
        sample.img_aug = a[None] @ sample.img_aug
        return sample


def project_to_image(points_lidar: np.ndarray, cam2lidar: np.ndarray, intrinsics: np.ndarray,
                     img_aug: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) LiDAR points -> ((N, 2) pixels in the (augmented) image, (N,) depth) for one camera."""
    l2c = np.linalg.inv(cam2lidar)
    pc = np.asarray(points_lidar, np.float64)[:, :3] @ l2c[:3, :3].T + l2c[:3, 3]
    uvw = pc @ np.asarray(intrinsics, np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[:, :2] / uvw[:, 2:3]
    if img_aug is not None:
        uv = uv @ img_aug[:2, :2].T + img_aug[:2, 2]
    return uv, pc[:, 2]


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: reseed the dataset's transforms from torch's worker seed."""
    import torch

    info = torch.utils.data.get_worker_info()
    ds = info.dataset if info is not None else None
    transforms = getattr(ds, "transforms", None)
    if transforms is not None and hasattr(transforms, "reseed"):
        transforms.reseed(int(info.seed % (2**31)))
