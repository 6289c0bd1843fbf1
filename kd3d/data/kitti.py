"""KITTI 3D object dataset: frames as :class:`~kd3d.structures.sample.Sample` objects.

Layout (the official one)::

    root/ImageSets/{train,val,trainval,test}.txt      frame ids, one per line
    root/training/{velodyne/*.bin, calib/*.txt, label_2/*.txt, image_2/*.png}
    root/testing/{velodyne, calib, image_2}           (no labels)

Sample contents: ``points`` (N, 5) float32 velodyne frame ``x y z reflectance 0`` (NaN/inf rows
dropped); boxes of the labels whose type is in ``class_names`` in the velodyne frame; one camera
``CAM2``: ``cam_intrinsics = P2[:, :3]``, ``cam2lidar`` the inverse of velodyne -> camera-2
(``R0_rect``, ``Tr_velo_to_cam`` and P2's baseline offset), so ``K @ lidar2cam @ p`` equals the
devkit's ``P2 @ R0_rect @ Tr_velo_to_cam @ p``. ``lidar2ego`` and ``ego2global`` are identity.
``meta``: ``calib`` (KittiCalib), ``image_shape`` (H, W), ``frame_id``, and ``box_meta`` aligned
with ``gt_boxes``: ``name``, ``truncation``, ``occlusion``, ``alpha``, ``bbox`` (x1 y1 x2 y2),
``difficulty`` (0 easy, 1 moderate, 2 hard, -1 none, by the KITTI devkit thresholds).
``gt_num_points`` counts the velodyne points inside each box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kd3d.data.nuscenes import load_image, load_lidar_bin
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.calib import KittiCalib
from kd3d.structures.classes import KITTI_CLASSES
from kd3d.structures.sample import Sample

KITTI_SPLITS = ("train", "val", "trainval", "test")
# KITTI devkit difficulty thresholds: (min 2D box height px, max occlusion, max truncation)
KITTI_DIFFICULTY = ((40.0, 0, 0.15), (25.0, 1, 0.30), (25.0, 2, 0.50))


def kitti_difficulty(bbox_height, occlusion, truncation) -> np.ndarray:
    """(N,) int64: the easiest KITTI level (0 easy, 1 moderate, 2 hard) a box satisfies, -1 none."""
    h = np.asarray(bbox_height, np.float64)
    occ = np.asarray(occlusion, np.int64)
    trunc = np.asarray(truncation, np.float64)
    out = np.full(h.shape, -1, np.int64)
    for level in (2, 1, 0):
        min_h, max_occ, max_trunc = KITTI_DIFFICULTY[level]
        out[(h >= min_h) & (occ <= max_occ) & (trunc <= max_trunc)] = level
    return out


def read_kitti_label(path: str | Path) -> dict[str, np.ndarray]:
    """Parse a ``label_2`` file into arrays: name, truncation, occlusion, alpha, bbox (N, 4),
    dimensions (N, 3) h w l, location (N, 3), rotation_y, score (NaN when absent)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI label file not found: {path}")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in (15, 16):
            raise ValueError(f"{path}:{lineno}: expected 15 or 16 fields (type trunc occ alpha bbox(4) dims(3) "
                             f"loc(3) ry [score]), got {len(f)}")
        try:
            nums = [float(v) for v in f[1:]]
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: non-numeric field ({exc})") from exc
        rows.append((f[0], nums + ([np.nan] if len(f) == 15 else [])))
    n = len(rows)
    vals = np.array([r[1] for r in rows], np.float64).reshape(n, 15)
    return {
        "name": np.array([r[0] for r in rows], dtype=str).reshape(n), "truncation": vals[:, 0],
        "occlusion": vals[:, 1].astype(np.int64), "alpha": vals[:, 2], "bbox": vals[:, 3:7],
        "dimensions": vals[:, 7:10], "location": vals[:, 10:13], "rotation_y": vals[:, 13], "score": vals[:, 14],
    }


def kitti_cam2lidar(calib: KittiCalib) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), cam2lidar (4, 4)) of camera 2 from a KittiCalib."""
    k = calib.P2[:, :3].copy()
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(k, calib.P2[:, 3])
    lidar2cam = shift @ calib.velo_to_rect
    return k, np.linalg.inv(lidar2cam)


def read_split_ids(root: str | Path, split: str) -> list[str]:
    root = Path(root)
    if split not in KITTI_SPLITS:
        raise ValueError(f"unknown KITTI split {split!r}; expected one of {KITTI_SPLITS}")
    path = root / "ImageSets" / f"{split}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"KITTI split file not found: {path}")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path}: split {split!r} lists no frames")
    return ids


class KittiDataset:
    """Map-style KITTI dataset (see module docstring)."""

    def __init__(self, root: str | Path, split: str, *, load_images: bool = True,
                 class_names: tuple[str, ...] = KITTI_CLASSES,
                 transforms: Callable[[Sample], Sample] | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"KITTI root not found: {self.root}")
        self.split, self.load_images = split, load_images
        self.class_names, self.transforms = tuple(class_names), transforms
        self.ids = read_split_ids(self.root, split)
        self.folder = self.root / ("testing" if split == "test" else "training")
        self.has_labels = split != "test"
        for sub in ("velodyne", "calib") + (("label_2",) if self.has_labels else ()):
            if not (self.folder / sub).is_dir():
                raise FileNotFoundError(f"KITTI folder missing: {self.folder / sub}")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tokens(self) -> list[str]:
        return list(self.ids)

    def get_raw(self, idx: int) -> Sample:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} frames")
        fid = self.ids[idx]
        raw = load_lidar_bin(self.folder / "velodyne" / f"{fid}.bin", dims=4)
        raw = raw[np.isfinite(raw).all(axis=1)]
        points = np.concatenate([raw, np.zeros((len(raw), 1), np.float32)], axis=1)
        calib = KittiCalib.from_file(self.folder / "calib" / f"{fid}.txt")
        k, c2l = kitti_cam2lidar(calib)
        images, image_shape = None, None
        img_path = self.folder / "image_2" / f"{fid}.png"
        if self.load_images:
            images = load_image(img_path)[None]
            image_shape = images.shape[1:3]
        elif img_path.is_file():
            from PIL import Image

            with Image.open(img_path) as im:
                image_shape = (im.height, im.width)
        boxes, labels = Boxes3D(), np.zeros(0, np.int64)
        box_meta = {"name": np.zeros(0, str), "truncation": np.zeros(0), "occlusion": np.zeros(0, np.int64),
                    "alpha": np.zeros(0), "bbox": np.zeros((0, 4)), "difficulty": np.zeros(0, np.int64)}
        if self.has_labels:
            lab = read_kitti_label(self.folder / "label_2" / f"{fid}.txt")
            keep = np.isin(lab["name"], self.class_names)
            boxes = Boxes3D.from_kitti(lab["location"][keep], lab["dimensions"][keep], lab["rotation_y"][keep], calib)
            labels = np.array([self.class_names.index(n) for n in lab["name"][keep]], np.int64)
            bbox = lab["bbox"][keep]
            box_meta = {
                "name": lab["name"][keep], "truncation": lab["truncation"][keep], "occlusion": lab["occlusion"][keep],
                "alpha": lab["alpha"][keep], "bbox": bbox,
                "difficulty": kitti_difficulty(bbox[:, 3] - bbox[:, 1], lab["occlusion"][keep], lab["truncation"][keep]),
            }
        npts = boxes.points_in_boxes(points).sum(axis=0).astype(np.int64) if len(boxes) else np.zeros(0, np.int64)
        sample = Sample(
            token=fid, points=points, num_key_points=len(points), gt_boxes=boxes, gt_labels=labels,
            gt_attrs=np.full(len(boxes), -1, np.int64), gt_num_points=npts, images=images, cam_names=["CAM2"],
            cam_intrinsics=k[None], cam2lidar=c2l[None], img_aug=np.eye(3)[None],
            meta={"dataset": "kitti", "frame_id": fid, "calib": calib, "image_shape": image_shape,
                  "box_meta": box_meta},
        )
        return sample.validate()

    def __getitem__(self, idx: int) -> Sample:
        sample = self.get_raw(idx)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __repr__(self) -> str:
        return f"KittiDataset({self.root}, {self.split!r}, n={len(self)}, images={self.load_images})"
