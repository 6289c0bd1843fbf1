"""Dataset factories for :data:`kd3d.engine.builders.DATASETS` (config -> loader objects).

Augmentation pipelines are written in configs as a list of ``[name, kwargs]`` pairs, ``name``
being a transform class of :mod:`kd3d.data.transforms` (or ``GTDatabaseSampler`` of
:mod:`kd3d.data.gt_database`)::

    data.train_kwargs = {"transforms": [
        ["GlobalRotScaleTrans", {"rot_range": [-0.785, 0.785], "scale_range": [0.9, 1.1]}],
        ["RandomFlip3D", {"p_x": 0.5, "p_y": 0.5}],
        ["PointRangeFilter", {"point_range": [-51.2, -51.2, -5, 51.2, 51.2, 3]}],
        ["PointShuffle", {}]]}

Random transforms are reseeded per sample by the engine (exact resume).
"""
from __future__ import annotations

from typing import Sequence

from kd3d.engine.config import ConfigError

_TRANSFORM_MODULES = ("kd3d.data.transforms", "kd3d.data.gt_database")


def build_transforms(spec: Sequence | None, where: str = "data.transforms"):
    """``[[name, kwargs], ...]`` -> ``kd3d.data.transforms.Compose`` (None for an empty list)."""
    if not spec:
        return None
    import importlib

    from kd3d.data.transforms import Compose

    out = []
    for i, item in enumerate(spec):
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], dict)):
            raise ConfigError(f"{where}[{i}]: expected [name, kwargs], got {item!r}")
        name, kwargs = item
        cls = None
        for mod in _TRANSFORM_MODULES:
            cand = getattr(importlib.import_module(mod), name, None)
            if isinstance(cand, type) and not name.startswith("_"):
                cls = cand
                break
        if cls is None:
            raise ConfigError(f"{where}[{i}]: unknown transform {name!r} (a class of {' or '.join(_TRANSFORM_MODULES)})")
        try:
            out.append(cls(**kwargs))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}[{i}] {name}: {exc}") from exc
    return Compose(out)


def nuscenes_dataset(*, root, version, split, train, transforms=None, **kwargs):
    """:class:`kd3d.data.nuscenes.NuScenesDataset` (``dataroot=root``); ``kwargs``: sweeps,
    cameras, load_images, load_lidarseg, class_names, index_file."""
    from kd3d.data.nuscenes import NuScenesDataset

    for key in ("cameras", "class_names"):
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = tuple(kwargs[key])
    tf = build_transforms(transforms, f"data.{'train' if train else 'val'}_kwargs.transforms")
    try:
        return NuScenesDataset(root, version, split, transforms=tf, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"data.kwargs for nuscenes: {exc}") from exc


def kitti_dataset(*, root, version, split, train, transforms=None, **kwargs):
    """:class:`kd3d.data.kitti.KittiDataset` (``version`` is ignored)."""
    from kd3d.data.kitti import KittiDataset

    tf = build_transforms(transforms, f"data.{'train' if train else 'val'}_kwargs.transforms")
    try:
        return KittiDataset(root, split, transforms=tf, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"data.kwargs for kitti: {exc}") from exc


def mmdet3d_infos_dataset(*, root, version, split, train, transforms=None, info_files=None, **kwargs):
    """An mmdet3d info file as a dataset (:func:`kd3d.data.infos.info_dataset`, nuScenes or KITTI,
    mmdet3d 1.x or 0.x). ``info_files`` maps a split name to its ``.pkl`` (relative to ``root`` or
    absolute); without it ``root/nuscenes_infos_<split>.pkl`` or ``root/kitti_infos_<split>.pkl``.
    ``version`` is the nuScenes version the devkit evaluator needs (ignored for KITTI);
    ``kwargs``: sweeps, cameras, load_images, class_names, box_convention, use_valid_flag
    (nuScenes) or load_images, class_names, data_prefix (KITTI)."""
    from pathlib import Path

    from kd3d.data.infos import NuScenesInfoDataset, info_dataset

    where = f"data.{'train' if train else 'val'}_kwargs"
    if info_files is not None:
        if split not in info_files:
            raise ConfigError(f"data.kwargs.info_files: no info file for split {split!r} (has {sorted(info_files)})")
        path = Path(info_files[split])
        path = path if path.is_absolute() else Path(root) / path
    else:
        cands = [Path(root) / f"{name}_infos_{split}.pkl" for name in ("nuscenes", "kitti")]
        path = next((c for c in cands if c.is_file()), None)
        if path is None:
            raise ConfigError(f"data.kwargs.info_files: not given and none of {[str(c) for c in cands]} exists")
    for key in ("cameras", "class_names"):
        if key in kwargs and kwargs[key] is not None:
            kwargs[key] = tuple(kwargs[key])
    tf = build_transforms(transforms, f"{where}.transforms")
    try:
        ds = info_dataset(path, root, split=split, transforms=tf, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"data.kwargs for mmdet3d_infos: {exc}") from exc
    if isinstance(ds, NuScenesInfoDataset) and not ds.version:
        ds.version = version  # the file's own metadata wins; this only fills a missing one
    return ds
