"""nuScenes dataset: key frames as :class:`~kd3d.structures.sample.Sample` objects.

Works on any version folder in the devkit's format (real v1.0-mini / trainval / test or kd3d's
synthetic data). Sample contents (frames in the Sample docstring):

* ``points`` (N, 5) float32 ``x y z intensity dt`` in the key-frame LiDAR frame: the key frame
  first (all its points, so lidarseg labels stay aligned), then up to ``sweeps - 1`` previous
  sweeps, each moved sweep LiDAR -> ego(t_sweep) -> global -> ego(t_key) -> LiDAR(t_key), with
  ``dt = t_key - t_sweep`` (>= 0). As in the devkit's ``from_file_multisweep``, sweep points with
  ``|x| < 1 and |y| < 1`` (the ego roof) are removed; key-frame points are kept.
  Points with a NaN/inf coordinate or intensity are dropped (with their lidarseg label).
* GT boxes of the annotations whose category maps to one of ``class_names``
  (``NUSC_CATEGORY_TO_DET``), in the key-frame LiDAR frame; ``gt_attrs`` the first attribute
  (index into NUSC_ATTRIBUTES, -1 if none); ``gt_num_points`` = ``num_lidar_pts``.
* ``points_label`` lidarseg 32 -> 16 labels of the key-frame points (None without lidarseg).
* cameras: images (NC, H, W, 3) uint8 (all cameras must share a size), K, cam2lidar.
* ``meta``: scene, sample_token, lidar_sd_token, lidar_path, cam_paths, and ``box_meta``
  (per-box arrays kept aligned with ``gt_boxes`` by transforms: ``instance``, ``ann_token``,
  ``category``).
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from kd3d.data import nuscenes_index as nidx
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import (
    NUSC_ATTRIBUTES, NUSC_CATEGORY_TO_DET, NUSC_DET_CLASSES, NUSC_LIDARSEG_CATEGORIES, NUSC_LIDARSEG_CLASSES,
    NUSC_LIDARSEG_FINE_TO_COARSE,
)
from kd3d.structures.sample import Sample

NUSC_CAMERAS: tuple[str, ...] = (
    "CAM_FRONT", "CAM_FRONT_RIGHT", "CAM_FRONT_LEFT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT",
)
_FINE_NAME_TO_COARSE = dict(zip(NUSC_LIDARSEG_CATEGORIES, NUSC_LIDARSEG_FINE_TO_COARSE))
log = logging.getLogger(__name__)
_WARNED_NONFINITE: set[str] = set()  # point files already reported (one warning per file and process)


def load_lidar_bin(path: str | Path, dims: int = 5) -> np.ndarray:
    """Raw (N, dims) float32 from a ``.pcd.bin`` / ``.bin``; clear error on a truncated file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LiDAR file not found: {path}")
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % dims:
        raise ValueError(f"{path}: {path.stat().st_size} bytes is not a multiple of {dims} float32 "
                         f"({4 * dims} bytes per point); the file is truncated or corrupt")
    return raw.reshape(-1, dims)


def load_image(path: str | Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path}: unreadable image ({exc})") from exc


def finite_point_rows(raw: np.ndarray, path: str | Path, cols: int = 4) -> np.ndarray:
    """(N,) bool: row ``i`` of the (N, >=cols) points read from ``path`` has no NaN/inf in its
    first ``cols`` columns (x y z intensity). The first time a file has such rows, a warning
    names the file and the count (once per file and process: epochs re-read the same files)."""
    keep = np.isfinite(raw[:, :cols]).all(axis=1)
    if not keep.all() and str(path) not in _WARNED_NONFINITE:
        _WARNED_NONFINITE.add(str(path))
        log.warning("%s: dropped %d of %d points with a NaN/inf coordinate or intensity", path,
                    int((~keep).sum()), len(keep))
    return keep


class NuScenesDataset:
    """Map-style dataset over a nuScenes version folder (see module docstring).

    ``split``: a devkit split (``train``/``val``/``test``/``mini_train``/``mini_val``/...) or
    ``all``, or a custom split stored in the index. ``load_lidarseg``: True (error without
    lidarseg), False, or ``"auto"`` (when the version has it). ``index_file``: a kd3d index
    (default ``dataroot/kd3d_index_<version>.json`` if present); without one the tables are read
    once at construction.
    """

    def __init__(self, dataroot: str | Path, version: str, split: str, *, sweeps: int = 10,
                 cameras: tuple[str, ...] = NUSC_CAMERAS, load_images: bool = True,
                 load_lidarseg: bool | str = "auto", class_names: tuple[str, ...] = NUSC_DET_CLASSES,
                 transforms: Callable[[Sample], Sample] | None = None, index_file: str | Path | None = None):
        if sweeps < 1:
            raise ValueError(f"sweeps must be >= 1 (1 = key frame only), got {sweeps}")
        if load_lidarseg not in (True, False, "auto"):
            raise ValueError(f"load_lidarseg must be True, False or 'auto', got {load_lidarseg!r}")
        unknown = [c for c in class_names if c not in NUSC_DET_CLASSES]
        if unknown:
            raise ValueError(f"class_names {unknown} are not nuScenes detection classes {NUSC_DET_CLASSES}")
        self.dataroot, self.version, self.split = Path(dataroot), version, split
        self.sweeps, self.cameras, self.load_images = sweeps, tuple(cameras), load_images
        self.class_names, self.transforms = tuple(class_names), transforms
        nidx.version_dir(self.dataroot, version)
        path = Path(index_file) if index_file is not None else nidx.default_index_path(self.dataroot, version)
        index, self.index_path = None, None
        if index_file is not None or path.is_file():
            index = nidx.read_index(path, self.dataroot, version, split=split)
            problem = None
            if split not in index["splits"]:
                problem = (f"{path}: split {split!r} not in the index (has {sorted(index['splits'])}); "
                           f"rebuild it with `kd3d create-data nuscenes --splits {split}`")
            elif index["max_sweeps"] < sweeps:
                problem = (f"{path}: index holds {index['max_sweeps']} sweeps, dataset asks for {sweeps}; "
                           f"rebuild with --max-sweeps {sweeps}")
            if problem and index_file is not None:
                raise ValueError(problem)
            if problem:  # the default index does not fit this request: read the tables instead
                warnings.warn(problem + "; reading the tables instead", stacklevel=2)
                index = None
            else:
                self.index_path = path
        if index is None:
            index = nidx.build_index(self.dataroot, version, [split], max_sweeps=sweeps)
        tokens = index["splits"][split]
        if not tokens:
            raise ValueError(f"split {split!r} of {self.dataroot / version} has no samples")
        self._tokens = list(tokens)
        self._raw = [index["samples"][t] for t in tokens]  # dicts, or JSON text from an index file
        self.has_lidarseg = bool(index["has_lidarseg"])
        if load_lidarseg is True and not self.has_lidarseg:
            raise FileNotFoundError(f"{self.dataroot / version / 'lidarseg.json'}: no lidarseg in this version "
                                    "(load_lidarseg=True)")
        self.load_lidarseg = self.has_lidarseg if load_lidarseg == "auto" else bool(load_lidarseg)
        self._seg_lut = self._build_seg_lut(index.get("lidarseg_categories") or {})
        first = self.entry(0)
        for chan in self.cameras:
            if chan not in first["cams"]:
                raise ValueError(f"camera {chan!r} not in sample {tokens[0]} (has {sorted(first['cams'])})")

    @staticmethod
    def _build_seg_lut(category_index: dict[str, int]) -> np.ndarray:
        """(256,) int64 fine label index -> 16-class label, from category.json's ``index``."""
        lut = np.zeros(256, np.int64)
        if not category_index:
            lut[: len(NUSC_LIDARSEG_FINE_TO_COARSE)] = NUSC_LIDARSEG_FINE_TO_COARSE
        for name, idx in category_index.items():
            lut[int(idx)] = _FINE_NAME_TO_COARSE.get(name, 0)
        return lut

    def __len__(self) -> int:
        return len(self._raw)

    @property
    def tokens(self) -> list[str]:
        return list(self._tokens)

    @property
    def entries(self) -> list[dict]:
        """Every index entry, parsed (for look-ups by token prefer :attr:`tokens`)."""
        return [self.entry(i) for i in range(len(self))]

    def entry(self, idx: int) -> dict:
        """The index entry of sample ``idx`` (paths, transforms, annotations; see nuscenes_index)."""
        return nidx.entry(self.index_path or "<tables>", self._raw[idx])

    # ------------------------------------------------------------------ loading
    def _points(self, e: dict) -> tuple[np.ndarray, int, np.ndarray | None]:
        key = load_lidar_bin(self.dataroot / e["lidar"]["path"])
        label = None
        if self.load_lidarseg:
            if not e["lidar"]["lidarseg"]:
                raise FileNotFoundError(f"{self.dataroot / self.version / 'lidarseg.json'}: no lidarseg record for "
                                        f"LiDAR sample_data {e['lidar']['sd_token']}")
            seg_path = self.dataroot / e["lidar"]["lidarseg"]
            if not seg_path.is_file():
                raise FileNotFoundError(f"lidarseg label file not found: {seg_path}")
            fine = np.fromfile(seg_path, dtype=np.uint8)
            if fine.shape[0] != key.shape[0]:
                raise ValueError(f"{seg_path}: {fine.shape[0]} labels for {key.shape[0]} points in "
                                 f"{self.dataroot / e['lidar']['path']}")
            label = self._seg_lut[fine]
        keep = finite_point_rows(key, self.dataroot / e["lidar"]["path"])
        if not keep.all():
            key = key[keep]
            label = None if label is None else label[keep]
        parts = [np.empty((len(key), 5), np.float32)]
        parts[0][:, :4] = key[:, :4]
        parts[0][:, 4] = 0
        for sw in e["sweeps"][: self.sweeps - 1]:
            raw = load_lidar_bin(self.dataroot / sw["path"])
            roof = (np.abs(raw[:, 0]) < 1.0) & (np.abs(raw[:, 1]) < 1.0)
            keep = finite_point_rows(raw, self.dataroot / sw["path"]) & ~roof
            raw = raw[keep]
            m = np.asarray(sw["sweep2lidar"], np.float64)
            out = np.empty((len(raw), 5), np.float32)
            # float32 is exact enough here: sensor-frame coordinates, ~1e-5 m rounding
            np.matmul(raw[:, :3], m[:3, :3].T.astype(np.float32), out=out[:, :3])
            out[:, :3] += m[:3, 3].astype(np.float32)
            out[:, 3] = raw[:, 3]
            out[:, 4] = sw["dt"]
            parts.append(out)
        points = np.concatenate(parts, axis=0)
        return points, len(key), label

    def _boxes(self, e: dict):
        anns = e["anns"]
        cats = anns["category"]
        keep = [i for i, c in enumerate(cats) if NUSC_CATEGORY_TO_DET.get(c) in self.class_names]
        data = np.array([[np.nan if v is None else v for v in anns["boxes"][i]] for i in keep], np.float64)
        boxes = Boxes3D(data.reshape(-1, 9))
        labels = np.array([self.class_names.index(NUSC_CATEGORY_TO_DET[cats[i]]) for i in keep], np.int64)
        attrs = np.array([NUSC_ATTRIBUTES.index(anns["attributes"][i][0])
                          if anns["attributes"][i] and anns["attributes"][i][0] in NUSC_ATTRIBUTES else -1
                          for i in keep], np.int64)
        npts = np.array([anns["num_lidar_pts"][i] for i in keep], np.int64)
        box_meta = {
            "instance": np.array([anns["instance"][i] for i in keep], dtype=str).reshape(-1),
            "ann_token": np.array([anns["token"][i] for i in keep], dtype=str).reshape(-1),
            "category": np.array([cats[i] for i in keep], dtype=str).reshape(-1),
        }
        return boxes, labels, attrs, npts, box_meta

    def get_raw(self, idx: int) -> Sample:
        """The sample before ``transforms``."""
        if not -len(self) <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} samples")
        e = self.entry(idx)
        points, nkey, label = self._points(e)
        boxes, labels, attrs, npts, box_meta = self._boxes(e)
        cams = [e["cams"][c] for c in self.cameras]
        images = None
        if self.load_images and cams:
            imgs = [load_image(self.dataroot / c["path"]) for c in cams]
            shapes = {im.shape for im in imgs}
            if len(shapes) != 1:
                raise ValueError(f"sample {e['token']}: camera images differ in size {sorted(shapes)}; "
                                 "kd3d stacks the cameras of a sample and expects one size")
            images = np.stack(imgs)
        nc = len(cams)
        sample = Sample(
            token=e["token"], points=points, num_key_points=nkey, points_label=label,
            gt_boxes=boxes, gt_labels=labels, gt_attrs=attrs, gt_num_points=npts,
            images=images, cam_names=list(self.cameras),
            cam_intrinsics=np.array([c["intrinsics"] for c in cams], np.float64).reshape(nc, 3, 3),
            cam2lidar=np.array([c["cam2lidar"] for c in cams], np.float64).reshape(nc, 4, 4),
            img_aug=np.tile(np.eye(3), (nc, 1, 1)),
            lidar2ego=np.array(e["lidar2ego"], np.float64), ego2global=np.array(e["ego2global"], np.float64),
            timestamp=float(e["timestamp"]),
            meta={"dataset": "nuscenes", "scene": e["scene"], "sample_token": e["token"],
                  "lidar_sd_token": e["lidar"]["sd_token"], "lidar_path": e["lidar"]["path"],
                  "cam_paths": [c["path"] for c in cams], "box_meta": box_meta},
        )
        return sample.validate()

    def __getitem__(self, idx: int) -> Sample:
        sample = self.get_raw(idx)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __repr__(self) -> str:
        return (f"NuScenesDataset({self.dataroot}, {self.version!r}, {self.split!r}, n={len(self)}, "
                f"sweeps={self.sweeps}, cameras={len(self.cameras)}, images={self.load_images}, "
                f"lidarseg={self.load_lidarseg}, index={self.index_path})")


__all__ = ["NuScenesDataset", "NUSC_CAMERAS", "NUSC_LIDARSEG_CLASSES", "load_lidar_bin", "load_image"]
