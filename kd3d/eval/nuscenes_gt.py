"""nuScenes detection ground truth and box filtering, read from the devkit's tables.

Mirrors the devkit's ``load_gt`` / ``add_center_dist`` / ``filter_eval_boxes``:

* GT: annotations whose category maps to a detection class; attribute = the single attribute
  ('' when none); velocity = centred difference of the previous/next annotation of the instance
  (``NuScenes.box_velocity``: NaN for a lone annotation or a gap > 1.5 s, 3 s when centred);
  ``num_pts`` = lidar + radar points.
* filtering, for GT and predictions alike: keep a box when its xy distance to the ego pose of the
  sample's LIDAR_TOP sample_data is strictly below the class range; drop boxes with
  ``num_pts == 0`` (predictions carry -1); drop bicycles and motorcycles whose centre lies inside
  (boundary included) a ``static_object.bicycle_rack`` annotation box of the sample.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.eval.formats import NuscBoxes
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_CATEGORY_TO_DET, NUSC_DET_CLASSES

_ATTR_INDEX = {a: i for i, a in enumerate(NUSC_ATTRIBUTES)}
_CYCLES = (NUSC_DET_CLASSES.index("bicycle"), NUSC_DET_CLASSES.index("motorcycle"))


def split_sample_tokens(nusc, split: str) -> list[str]:
    """Sample tokens of a predefined devkit split, in ``nusc.sample`` order (devkit checks)."""
    from nuscenes.utils.splits import create_splits_scenes

    version = nusc.version
    if split in {"train", "val", "train_detect", "train_track"}:
        need = "trainval"
    elif split in {"mini_train", "mini_val"}:
        need = "mini"
    elif split == "test":
        need = "test"
    else:
        raise ValueError(f"unknown nuScenes split {split!r}; expected train/val/mini_train/mini_val/test")
    if not version.endswith(need):
        raise ValueError(f"split {split!r} needs a *{need} version, but the dataset is {version!r}")
    if split == "test" and len(nusc.sample_annotation) == 0:
        raise ValueError("cannot evaluate on the test split: the dataset has no annotations")
    scenes = set(create_splits_scenes()[split])
    tokens = [s["token"] for s in nusc.sample if nusc.get("scene", s["scene_token"])["name"] in scenes]
    if not tokens:
        raise ValueError(f"split {split!r}: no sample of {nusc.dataroot}/{version} belongs to its scenes")
    return tokens


@dataclass
class SceneInfo:
    """Per-sample data the filters need. ``ego_translation`` (S, 3) global ego position of each
    sample's LIDAR_TOP sample_data; ``racks[s]`` (K, 10) bicycle racks: translation 3,
    size ``w l h`` 3, rotation quaternion 4 (global)."""

    sample_tokens: list[str]
    ego_translation: np.ndarray
    racks: list[np.ndarray]


def load_scene_info(nusc, tokens, progress: bool = False) -> SceneInfo:
    ego = np.zeros((len(tokens), 3))
    racks = []
    for i, token in enumerate(_progress(tokens, progress, "ego poses")):
        sample = nusc.get("sample", token)
        sd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        ego[i] = nusc.get("ego_pose", sd["ego_pose_token"])["translation"]
        recs = [nusc.get("sample_annotation", a) for a in sample["anns"]]
        recs = [r for r in recs if r["category_name"] == "static_object.bicycle_rack"]
        racks.append(np.array([list(r["translation"]) + list(r["size"]) + list(r["rotation"]) for r in recs],
                              dtype=np.float64).reshape(-1, 10))
    return SceneInfo(list(tokens), ego, racks)


def _velocity(nusc, ann: dict, max_time_diff: float = 1.5) -> tuple[float, float]:
    has_prev, has_next = ann["prev"] != "", ann["next"] != ""
    if not has_prev and not has_next:
        return (np.nan, np.nan)
    first = nusc.get("sample_annotation", ann["prev"]) if has_prev else ann
    last = nusc.get("sample_annotation", ann["next"]) if has_next else ann
    diff = np.array(last["translation"]) - np.array(first["translation"])
    dt = 1e-6 * nusc.get("sample", last["sample_token"])["timestamp"] - \
        1e-6 * nusc.get("sample", first["sample_token"])["timestamp"]
    if has_prev and has_next:
        max_time_diff *= 2
    if dt > max_time_diff:
        return (np.nan, np.nan)
    v = diff / dt
    return (v[0], v[1])


def load_gt(nusc, tokens, progress: bool = False) -> NuscBoxes:
    """GT detection boxes of the samples ``tokens`` (rows: sample order, then ``anns`` order)."""
    attr_names = {a["token"]: a["name"] for a in nusc.attribute}
    cols = {k: [] for k in ("sample_idx", "translation", "size", "rotation", "velocity", "label", "attr", "num_pts")}
    for i, token in enumerate(_progress(tokens, progress, "load GT")):
        for ann_token in nusc.get("sample", token)["anns"]:
            ann = nusc.get("sample_annotation", ann_token)
            name = NUSC_CATEGORY_TO_DET.get(ann["category_name"])
            if name is None:
                continue
            attrs = ann["attribute_tokens"]
            if len(attrs) > 1:
                raise ValueError(f"sample_annotation {ann_token}: {len(attrs)} attributes; GT may have at most one")
            cols["sample_idx"].append(i)
            cols["translation"].append(ann["translation"])
            cols["size"].append(ann["size"])
            cols["rotation"].append(ann["rotation"])
            cols["velocity"].append(_velocity(nusc, ann))
            cols["label"].append(NUSC_DET_CLASSES.index(name))
            cols["attr"].append(_ATTR_INDEX[attr_names[attrs[0]]] if attrs else -1)
            cols["num_pts"].append(ann["num_lidar_pts"] + ann["num_radar_pts"])
    n = len(cols["label"])
    return NuscBoxes(list(tokens), score=np.full(n, -1.0), **{k: np.asarray(v) for k, v in cols.items()})


def _quat_matrix(q: np.ndarray) -> np.ndarray:
    """(K, 4) quaternions w x y z -> (K, 3, 3) rotation matrices (normalised first)."""
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], axis=1)


def in_racks(points: np.ndarray, racks: np.ndarray) -> np.ndarray:
    """(P,) bool: point (P, 3) inside (or on) any rack box (K, 10), as ``points_in_box``."""
    if len(racks) == 0 or len(points) == 0:
        return np.zeros(len(points), bool)
    w, l, h = racks[:, 3], racks[:, 4], racks[:, 5]
    sx = np.array([1, 1, 1, 1, -1, -1, -1, -1])
    sy = np.array([1, -1, -1, 1, 1, -1, -1, 1])
    sz = np.array([1, 1, -1, -1, 1, 1, -1, -1])
    local = np.stack([l[:, None] / 2 * sx, w[:, None] / 2 * sy, h[:, None] / 2 * sz], axis=1)  # (K, 3, 8)
    corners = _quat_matrix(racks[:, 6:10]) @ local + racks[:, 0:3, None]
    p1 = corners[:, :, 0]
    axes = np.stack([corners[:, :, 4] - p1, corners[:, :, 1] - p1, corners[:, :, 3] - p1], axis=1)  # (K, 3, 3)
    v = points[None, :, :] - p1[:, None, :]  # (K, P, 3)
    proj = np.einsum("kad,kpd->kpa", axes, v)
    lim = np.einsum("kad,kad->ka", axes, axes)[:, None, :]
    inside = ((proj >= 0) & (proj <= lim)).all(axis=2)
    return inside.any(axis=0)


def filter_boxes(boxes: NuscBoxes, scene: SceneInfo, class_range: dict) -> NuscBoxes:
    """Class-range, zero-point and bike-rack filtering (devkit ``filter_eval_boxes``)."""
    if len(boxes) == 0:
        return boxes
    index = {t: i for i, t in enumerate(scene.sample_tokens)}
    try:
        sid = np.array([index[t] for t in boxes.sample_tokens], dtype=np.int64)[boxes.sample_idx]
    except KeyError as err:
        raise ValueError(f"box sample {err.args[0]!r} has no scene info (ego pose)") from err
    rng = np.array([class_range[c] for c in NUSC_DET_CLASSES], dtype=np.float64)
    ego_t = boxes.translation - scene.ego_translation[sid]
    ego_dist = np.sqrt(ego_t[:, 0] ** 2 + ego_t[:, 1] ** 2)
    keep = (ego_dist < rng[boxes.label]) & (boxes.num_pts != 0)
    cyc = keep & np.isin(boxes.label, _CYCLES)
    for s in np.unique(sid[cyc]):
        racks = scene.racks[s]
        if len(racks):
            rows = np.flatnonzero(cyc & (sid == s))
            keep[rows[in_racks(boxes.translation[rows], racks)]] = False
    return boxes.select(keep)


def _progress(items, enabled: bool, desc: str):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, leave=False)
