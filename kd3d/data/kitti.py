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
``difficulty`` (0 easy, 1 moderate, 2 hard, -1 ignored at every level; the devkit's rule in
:mod:`kd3d.data.kitti_format`: 2D height strictly above 40 / 25 / 25 px).
``gt_num_points`` counts the velodyne points inside each box.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from kd3d.data.kitti_format import KITTI_SPLITS, kitti_cam2lidar, kitti_difficulty, read_calib, read_kitti_label
from kd3d.data.kitti_format import image_shape as _image_shape
from kd3d.data.kitti_format import read_split_ids
from kd3d.data.nuscenes import finite_point_rows, load_image, load_lidar_bin
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import KITTI_CLASSES
from kd3d.structures.sample import Sample

__all__ = ["KITTI_SPLITS", "KittiDataset", "kitti_cam2lidar", "kitti_difficulty", "read_kitti_label", "read_split_ids"]


class KittiFrames:
    """What the KITTI datasets share: frames ``self.ids`` (tokens), ``get_raw(idx)`` (subclass; it
    calls :meth:`check_index` first and builds the Sample with :meth:`make_sample`) and
    ``__getitem__`` = ``get_raw`` then ``self.transforms``."""

    ids: list[str]
    transforms: Callable[[Sample], Sample] | None
    class_names: tuple[str, ...]

    def make_sample(self, token: str, points: np.ndarray, calib, images, image_shape, lab: dict | None,
                    extra: tuple[str, ...] = ()) -> Sample:
        """The Sample of one frame (module docstring). ``points``: (N, 5) velodyne frame; ``lab``:
        label-file arrays (:func:`read_kitti_label` keys), None for a frame without labels; the
        ``extra`` keys of ``lab`` are carried into ``box_meta`` too."""
        k, c2l = kitti_cam2lidar(calib)
        boxes, labels = Boxes3D(), np.zeros(0, np.int64)
        box_meta = {"name": np.zeros(0, str), "truncation": np.zeros(0), "occlusion": np.zeros(0, np.int64),
                    "alpha": np.zeros(0), "bbox": np.zeros((0, 4)), "difficulty": np.zeros(0, np.int64)}
        if lab is not None:
            keep = np.isin(lab["name"], self.class_names)
            boxes = Boxes3D.from_kitti(lab["location"][keep], lab["dimensions"][keep], lab["rotation_y"][keep], calib)
            labels = np.array([self.class_names.index(n) for n in lab["name"][keep]], np.int64)
            box_meta = {key: lab[key][keep] for key in ("name", "truncation", "occlusion", "alpha", "bbox") + extra}
            bbox = box_meta["bbox"]
            box_meta["difficulty"] = kitti_difficulty(bbox[:, 3] - bbox[:, 1], box_meta["occlusion"],
                                                      box_meta["truncation"])
        npts = boxes.points_in_boxes(points).sum(axis=0).astype(np.int64) if len(boxes) else np.zeros(0, np.int64)
        sample = Sample(
            token=token, points=points, num_key_points=len(points), gt_boxes=boxes, gt_labels=labels,
            gt_attrs=np.full(len(boxes), -1, np.int64), gt_num_points=npts, images=images, cam_names=["CAM2"],
            cam_intrinsics=k[None], cam2lidar=c2l[None], img_aug=np.eye(3)[None],
            meta={"dataset": "kitti", "frame_id": token, "calib": calib, "image_shape": image_shape,
                  "box_meta": box_meta},
        )
        return sample.validate()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def tokens(self) -> list[str]:
        return list(self.ids)

    def check_index(self, idx: int) -> None:
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} frames")

    def get_raw(self, idx: int) -> Sample:
        raise NotImplementedError

    def __getitem__(self, idx: int) -> Sample:
        sample = self.get_raw(idx)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


class KittiDataset(KittiFrames):
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

    def get_raw(self, idx: int) -> Sample:
        self.check_index(idx)
        fid = self.ids[idx]
        bin_path = self.folder / "velodyne" / f"{fid}.bin"
        raw = load_lidar_bin(bin_path, dims=4)
        raw = raw[finite_point_rows(raw, bin_path)]
        points = np.concatenate([raw, np.zeros((len(raw), 1), np.float32)], axis=1)
        calib = read_calib(self.folder / "calib", fid)
        images = None
        img_path = self.folder / "image_2" / f"{fid}.png"
        if self.load_images:
            images = load_image(img_path)[None]
            image_shape = images.shape[1:3]
        else:
            image_shape = _image_shape(img_path)
        lab = read_kitti_label(self.folder / "label_2" / f"{fid}.txt") if self.has_labels else None
        return self.make_sample(fid, points, calib, images, image_shape, lab)

    def __repr__(self) -> str:
        return f"KittiDataset({self.root}, {self.split!r}, n={len(self)}, images={self.load_images})"
