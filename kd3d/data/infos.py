"""mmdet3d info files (``*_infos_*.pkl``) read directly: nuScenes and KITTI, mmdet3d 1.x and 0.x.

The file is read with kd3d's restricted unpickler (:func:`kd3d.data.pkl.load_pkl`); no devkit
tables are needed. Every info becomes the same :class:`~kd3d.structures.sample.Sample` kd3d's own
loaders make (:mod:`kd3d.data.nuscenes`, :mod:`kd3d.data.kitti`); frames are stated there.

Layouts and conventions (as mmdet3d's converters write them):

* nuScenes 1.x (``{'metainfo', 'data_list'}``): ``lidar_points.lidar_path`` (a file name under
  ``samples/LIDAR_TOP``), ``lidar2ego`` and ``ego2global`` 4x4; ``lidar_sweeps[i]`` with
  ``lidar_points.lidar_path`` (``data/nuscenes/sweeps/...``), ``timestamp`` (s), ``ego2global``,
  ``lidar_points.lidar2ego`` and ``lidar2sensor`` (float32); ``images[CAM]`` with ``cam2img``
  (3x3), ``lidar2cam`` (float32 4x4); ``instances[i]``: ``bbox_3d`` (x y z l w h yaw) gravity
  centre in the key-frame LiDAR frame, ``velocity`` (vx vy, LiDAR frame, NaN unknown),
  ``bbox_label_3d`` (index into ``metainfo['categories']``, mmdet3d's class order, -1 ignored),
  ``num_lidar_pts``, ``bbox_3d_isvalid``.
* nuScenes 0.x (``{'infos', 'metadata'}``): quaternions + translations, ``sweeps[i]`` /
  ``cams[CAM]`` with ``sensor2lidar_rotation/translation``, timestamps in microseconds,
  ``gt_boxes`` (N, 7), ``gt_names``, ``gt_velocity``, ``num_lidar_pts``, ``valid_flag``.
  Files written by mmdet3d before v1.0.0rc0 store boxes as ``x y z w l h (-yaw - pi/2)``
  (``box_convention='legacy'``); later ones as ``x y z l w h yaw`` (``'lwh'``). ``'auto'`` decides
  from the boxes: in the lwh layout almost every elongated box has dims[0] > dims[1].
* KITTI 1.x: ``images.CAM2.cam2img`` (P2, 4x4), ``images.R0_rect``,
  ``lidar_points.Tr_velo_to_cam``, ``instances[i].bbox_3d`` = camera-frame *bottom* centre
  ``x y z l h w ry``; KITTI 0.x (a list): ``calib.{P2,R0_rect,Tr_velo_to_cam}`` and ``annos`` with
  ``dimensions`` as l h w (mmdet3d reorders the label's h w l).

Differences to kd3d's loaders, by necessity: info files carry no nuScenes attributes
(``gt_attrs`` = -1), no instance / annotation tokens and no general category (``box_meta`` holds
the detection ``name`` and mmdet3d's ``valid`` flag); camera extrinsics of 1.x files are float32
(about 1e-6 m); lidarseg labels are not read. KITTI ``gt_num_points`` counts the points of the
point file inside each box, as :class:`~kd3d.data.kitti.KittiDataset` does (the info's own count,
taken on mmdet3d's camera-FOV-reduced cloud, is kept in ``box_meta['num_lidar_pts']``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from kd3d.data.infos_parse import InfoFile, entry_kitti, entry_nuscenes, read_infos
from kd3d.data.kitti import KittiFrames
from kd3d.data.nuscenes import NUSC_CAMERAS, NuScenesDataset, finite_point_rows, load_image, load_lidar_bin
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import KITTI_CLASSES, NUSC_DET_CLASSES
from kd3d.structures.sample import Sample

__all__ = ["InfoFile", "KittiInfoDataset", "NuScenesInfoDataset", "info_dataset", "read_infos"]


class NuScenesInfoDataset(NuScenesDataset):
    """nuScenes key frames from an mmdet3d info file (module docstring). Points, sweeps and
    cameras are built by :class:`NuScenesDataset`'s own code from the converted entries.

    ``root``: the nuScenes folder the info's paths are relative to (``data/nuscenes``);
    ``version``: for evaluation with the devkit tables (default: the file's metadata);
    ``split``: a name for the split (a devkit split name lets the nuScenes evaluator use it);
    ``use_valid_flag``: drop boxes mmdet3d marks invalid (no LiDAR or radar point), as mmdet3d's
    CenterPoint configs do (default False: every box, like :class:`NuScenesDataset`).
    ``load_lidarseg``: accepted as False / "auto" (configs written for the 'nuscenes' dataset).
    """

    def __init__(self, info: InfoFile | str | Path, root: str | Path, *, split: str = "infos",
                 version: str | None = None, sweeps: int = 10, cameras: tuple[str, ...] = NUSC_CAMERAS,
                 load_images: bool = True, class_names: tuple[str, ...] = NUSC_DET_CLASSES,
                 transforms: Callable[[Sample], Sample] | None = None, box_convention: str = "auto",
                 use_valid_flag: bool = False, load_lidarseg: bool | str = False):
        if load_lidarseg is True:
            raise ValueError("load_lidarseg=True: lidarseg labels are not read from info files (use the "
                             "'nuscenes' dataset with the devkit tables)")
        if sweeps < 1:
            raise ValueError(f"sweeps must be >= 1 (1 = key frame only), got {sweeps}")
        unknown = [c for c in class_names if c not in NUSC_DET_CLASSES]
        if unknown:
            raise ValueError(f"class_names {unknown} are not nuScenes detection classes {NUSC_DET_CLASSES}")
        self.info = info if isinstance(info, InfoFile) else read_infos(info, box_convention=box_convention)
        if self.info.dataset != "nuscenes":
            raise ValueError(f"{self.info.path}: a {self.info.dataset} info file, expected nuScenes")
        self.dataroot, self.split = Path(root).absolute(), split
        if not self.dataroot.is_dir():
            raise FileNotFoundError(f"nuScenes root not found: {self.dataroot} (the folder the paths of "
                                    f"{self.info.path} are relative to)")
        self.version = version or self.info.version or ""
        self.sweeps, self.cameras, self.load_images = sweeps, tuple(cameras), load_images
        self.class_names, self.transforms, self.use_valid_flag = tuple(class_names), transforms, use_valid_flag
        self.index_path = self.info.path
        self._raw = self.info.infos
        self._tokens = [entry_nuscenes(self.info, i, self.dataroot, with_paths=False)["token"]
                        for i in range(len(self._raw))]
        if not self._tokens:
            raise ValueError(f"{self.info.path}: no infos")
        self.has_lidarseg = self.load_lidarseg = False
        first = self.entry(0)
        for chan in self.cameras:
            if chan not in first["cams"]:
                raise ValueError(f"{self.info.path}: info 0 field 'images' has no camera {chan!r} "
                                 f"(has {sorted(first['cams'])}); set cameras=()")

    def entry(self, idx: int) -> dict:
        """Info ``idx`` as a kd3d index entry (see :mod:`kd3d.data.nuscenes_index`), paths resolved."""
        return entry_nuscenes(self.info, idx if idx >= 0 else idx + len(self), self.dataroot)

    def _boxes(self, e: dict):
        anns = e["anns"]
        names = anns["name"]
        keep = [i for i, n in enumerate(names)
                if n in self.class_names and (anns["valid"][i] or not self.use_valid_flag)]
        boxes = Boxes3D(np.asarray(anns["boxes"], np.float64).reshape(-1, 9)[keep])
        labels = np.array([self.class_names.index(names[i]) for i in keep], np.int64)
        box_meta = {"name": np.array([names[i] for i in keep], dtype=str).reshape(-1),
                    "valid": np.array([anns["valid"][i] for i in keep], bool).reshape(-1)}
        npts = np.array([anns["num_lidar_pts"][i] for i in keep], np.int64).reshape(-1)
        return boxes, labels, np.full(len(keep), -1, np.int64), npts, box_meta

    def __repr__(self) -> str:
        return (f"NuScenesInfoDataset({self.info.path}, root={self.dataroot}, n={len(self)}, sweeps={self.sweeps}, "
                f"cameras={len(self.cameras)}, images={self.load_images}, boxes={self.info.box_convention})")


class KittiInfoDataset(KittiFrames):
    """KITTI frames from an mmdet3d info file (module docstring); Samples as
    :class:`~kd3d.data.kitti.KittiDataset` makes them. ``root``: the KITTI folder
    (``data/kitti``); 1.x file names are looked up under ``data_prefix`` (``pts``, ``img``)."""

    def __init__(self, info: InfoFile | str | Path, root: str | Path, *, split: str = "infos",
                 load_images: bool = True, class_names: tuple[str, ...] = KITTI_CLASSES,
                 transforms: Callable[[Sample], Sample] | None = None, data_prefix: dict | None = None):
        self.info = info if isinstance(info, InfoFile) else read_infos(info)
        if self.info.dataset != "kitti":
            raise ValueError(f"{self.info.path}: a {self.info.dataset} info file, expected KITTI")
        self.root, self.split = Path(root).absolute(), split
        if not self.root.is_dir():
            raise FileNotFoundError(f"KITTI root not found: {self.root}")
        self.load_images, self.class_names, self.transforms = load_images, tuple(class_names), transforms
        folder = "testing" if split == "test" else "training"
        self.prefix = {"pts": f"{folder}/velodyne", "img": f"{folder}/image_2", **(data_prefix or {})}
        self.folder = self.root / folder  # label_2 / calib / image_2 here serve the KITTI evaluator
        self.ids = [entry_kitti(self.info, i, self.root, self.prefix, with_paths=False)["token"]
                    for i in range(len(self.info.infos))]
        if not self.ids:
            raise ValueError(f"{self.info.path}: no infos")

    def get_raw(self, idx: int) -> Sample:
        self.check_index(idx)
        e = entry_kitti(self.info, idx % len(self), self.root, self.prefix)
        raw = load_lidar_bin(e["lidar_path"], dims=e["num_pts_feats"])
        raw = raw[finite_point_rows(raw, e["lidar_path"])]
        points = np.zeros((len(raw), 5), np.float32)
        points[:, :4] = raw[:, :4]
        images = load_image(e["img_path"])[None] if self.load_images else None
        image_shape = images.shape[1:3] if images is not None else e["image_shape"]
        return self.make_sample(e["token"], points, e["calib"], images, image_shape, e["anns"],
                                extra=("num_lidar_pts",))

    def __repr__(self) -> str:
        return f"KittiInfoDataset({self.info.path}, root={self.root}, n={len(self)}, images={self.load_images})"


def info_dataset(info_file: str | Path, root: str | Path, **kwargs: Any):
    """:class:`NuScenesInfoDataset` or :class:`KittiInfoDataset`, whichever the file holds.
    ``box_convention`` (nuScenes only) is read with the file."""
    info = read_infos(info_file, box_convention=kwargs.pop("box_convention", "auto"))
    cls = NuScenesInfoDataset if info.dataset == "nuscenes" else KittiInfoDataset
    return cls(info, root, **kwargs)
