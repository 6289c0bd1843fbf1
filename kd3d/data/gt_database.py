"""Ground-truth database (objects cut out of training scenes) and GT-database sampling.

The database is one ``.npz`` (no pickle; loaded with ``allow_pickle=False``):

  points      (P, 5) float32 ``x y z intensity dt``, relative to the object's box centre
              (the box's LiDAR frame translated to the centre, not rotated)
  offsets     (K + 1,) int64: object k owns ``points[offsets[k]:offsets[k+1]]``
  boxes       (K, 9) float64 Boxes3D layout in the source sample's LiDAR frame
  names       (K,) str detection class names
  difficulty  (K,) int64 (KITTI level, 0 for nuScenes)
  tokens      (K,) str source sample token

:class:`GTDatabaseSampler` pastes database objects into a training sample at their original
positions (as in SECOND), rejecting any whose BEV footprint overlaps an existing or already pasted
box (exact rotated-rectangle test), removes the scene points inside each pasted box, then adds the
object's points.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Iterable

import numpy as np

from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_LIDARSEG_CLASSES
from kd3d.structures.sample import Sample


def points_in_each_box(points: np.ndarray, boxes: Boxes3D) -> list[np.ndarray]:
    """For each box, the indices of ``points`` (N, >=3) inside it (same rule as
    ``Boxes3D.points_in_boxes``), prefiltered by each box's bounding square so that large clouds
    with many boxes stay fast."""
    xyz = np.asarray(points)[:, :3]
    out = []
    for k in range(len(boxes)):
        c = boxes.center[k]
        r = 0.5 * np.hypot(boxes.dims[k, 0], boxes.dims[k, 1]) + 1e-6
        near = np.flatnonzero((np.abs(xyz[:, 0] - c[0]) <= r) & (np.abs(xyz[:, 1] - c[1]) <= r)
                              & (np.abs(xyz[:, 2] - c[2]) <= 0.5 * boxes.dims[k, 2] + 1e-6))
        out.append(near[boxes[k].points_in_boxes(xyz[near])[:, 0]])
    return out


def build_gt_database(dataset, out_path: str | Path, *, min_points: int = 1, log=None) -> dict[str, int]:
    """Cut the GT objects of every sample of ``dataset`` (using ``get_raw``) into ``out_path``.

    Objects with fewer than ``min_points`` points (key frame + sweeps) are skipped. Returns the
    number of stored objects per class.
    """
    pts_list, boxes, names, diff, tokens, counts = [], [], [], [], [], [0]
    for i in range(len(dataset)):
        s = dataset.get_raw(i)
        if not len(s.gt_boxes):
            continue
        inside = points_in_each_box(s.points, s.gt_boxes)
        dlev = s.meta.get("box_meta", {}).get("difficulty", np.zeros(len(s.gt_boxes), np.int64))
        for k in range(len(s.gt_boxes)):
            obj = s.points[inside[k]].copy()
            if len(obj) < min_points:
                continue
            obj[:, :3] -= s.gt_boxes.center[k].astype(np.float32)
            pts_list.append(obj)
            counts.append(counts[-1] + len(obj))
            boxes.append(s.gt_boxes.data[k])
            names.append(dataset.class_names[s.gt_labels[k]])
            diff.append(int(dlev[k]))
            tokens.append(s.token)
        if log is not None and (i + 1) % 100 == 0:
            log(f"gt database: {i + 1}/{len(dataset)} samples, {len(names)} objects")
    out_path = Path(out_path)
    if out_path.suffix != ".npz":
        raise ValueError(f"GT database path must end in .npz, got {out_path}")
    np.savez(
        out_path, points=np.concatenate(pts_list) if pts_list else np.zeros((0, 5), np.float32),
        offsets=np.asarray(counts, np.int64), boxes=np.asarray(boxes, np.float64).reshape(-1, 9),
        names=np.asarray(names, dtype=str), difficulty=np.asarray(diff, np.int64), tokens=np.asarray(tokens, dtype=str),
    )
    return {c: names.count(c) for c in sorted(set(names))}


def bev_overlap(a: Boxes3D, b: Boxes3D) -> np.ndarray:
    """(len(a), len(b)) bool: the BEV rotated rectangles intersect (separating-axis test;
    touching edges count as overlapping)."""
    ca, cb = a.bev_corners(), b.bev_corners()  # (A, 4, 2), (B, 4, 2)
    if not len(ca) or not len(cb):
        return np.zeros((len(ca), len(cb)), bool)

    def axes(yaw):
        c, s = np.cos(yaw), np.sin(yaw)
        return np.stack([np.stack([c, s], -1), np.stack([-s, c], -1)], axis=1)  # (N, 2, 2)

    ax = np.concatenate([np.broadcast_to(axes(a.yaw)[:, None], (len(ca), len(cb), 2, 2)),
                         np.broadcast_to(axes(b.yaw)[None], (len(ca), len(cb), 2, 2))], axis=2)  # (A, B, 4, 2)
    pa = np.einsum("akd,abxd->abxk", ca, ax)  # (A, B, 4 axes, 4 corners)
    pb = np.einsum("bkd,abxd->abxk", cb, ax)
    separated = (pa.max(-1) < pb.min(-1)) | (pb.max(-1) < pa.min(-1))
    return ~separated.any(-1)


class GTDatabaseSampler:
    """Paste database objects so a sample holds up to ``sample_counts[class]`` boxes of a class.

    ``class_names``: the dataset's detection classes (labels index them). ``min_points``: minimum
    points of a pasted object; ``max_difficulty``: skip objects with a higher KITTI level.
    Seedable like the other transforms (``seed`` / ``reseed``).
    """

    def __init__(self, db_path: str | Path, class_names: Iterable[str], sample_counts: dict[str, int], *,
                 min_points: int = 5, max_difficulty: int | None = None, seed: int | None = None):
        db_path = Path(db_path)
        if not db_path.is_file():
            raise FileNotFoundError(f"GT database not found: {db_path} (build it with `kd3d create-data ... --gt-database`)")
        with np.load(db_path, allow_pickle=False) as z:
            missing = {"points", "offsets", "boxes", "names", "difficulty"} - set(z.files)
            if missing:
                raise ValueError(f"{db_path}: missing arrays {sorted(missing)} in GT database")
            self.points, self.offsets = z["points"], z["offsets"]
            self.boxes, self.names, self.difficulty = z["boxes"], z["names"], z["difficulty"]
        self.class_names = tuple(class_names)
        unknown = [c for c in sample_counts if c not in self.class_names]
        if unknown:
            raise ValueError(f"sample_counts classes {unknown} not in class_names {self.class_names}")
        npts = np.diff(self.offsets)
        ok = npts >= min_points
        if max_difficulty is not None:
            ok &= self.difficulty <= max_difficulty
        self.pool = {c: np.flatnonzero(ok & (self.names == c)) for c in sample_counts}
        self.sample_counts = dict(sample_counts)
        self.rng = np.random.default_rng(seed)

    def reseed(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def __call__(self, sample: Sample) -> Sample:
        chosen: list[int] = []
        current = sample.gt_boxes
        for cls, target in self.sample_counts.items():
            label = self.class_names.index(cls)
            need = target - int(np.count_nonzero(sample.gt_labels == label))
            pool = self.pool[cls]
            if need <= 0 or not len(pool):
                continue
            cand = self.rng.choice(pool, size=min(need, len(pool)), replace=False)
            for k in cand:
                box = Boxes3D(self.boxes[k][None])
                if bev_overlap(box, current).any():
                    continue
                chosen.append(int(k))
                current = Boxes3D.cat([current, box])
        if not chosen:
            return sample
        return self._paste(sample, chosen)

    def _paste(self, sample: Sample, chosen: list[int]) -> Sample:
        new_boxes = Boxes3D(self.boxes[chosen])
        inside = np.zeros(len(sample.points), bool)
        for idx in points_in_each_box(sample.points, new_boxes):
            inside[idx] = True
        nk = sample.num_key_points
        key, sweep = sample.points[:nk][~inside[:nk]], sample.points[nk:][~inside[nk:]]
        label = None if sample.points_label is None else sample.points_label[~inside[:nk]]
        obj_pts = []
        for k in chosen:
            p = self.points[self.offsets[k]:self.offsets[k + 1]].copy()
            p[:, :3] += self.boxes[k, :3].astype(np.float32)
            obj_pts.append(p)
        labels = np.array([self.class_names.index(str(self.names[k])) for k in chosen], np.int64)
        allp = np.concatenate(obj_pts)
        is_key = allp[:, 4] == 0
        out = replace(sample)
        out.points = np.concatenate([key, allp[is_key], sweep, allp[~is_key]]).astype(np.float32)
        out.num_key_points = len(key) + int(is_key.sum())
        if label is not None:
            seg = [NUSC_LIDARSEG_CLASSES.index(n) if n in NUSC_LIDARSEG_CLASSES else 0 for n in
                   np.repeat(self.names[chosen], [len(p) for p in obj_pts])[is_key]]
            out.points_label = np.concatenate([label, np.asarray(seg, np.int64)])
        out.gt_boxes = Boxes3D.cat([sample.gt_boxes, new_boxes])
        out.gt_labels = np.concatenate([sample.gt_labels, labels])
        out.gt_attrs = np.concatenate([sample.gt_attrs, np.full(len(chosen), -1, np.int64)])
        out.gt_num_points = np.concatenate([sample.gt_num_points, [len(p) for p in obj_pts]]).astype(np.int64)
        if "box_meta" in sample.meta:
            out.meta = dict(sample.meta)
            out.meta["box_meta"] = {k: _extend(v, len(chosen)) for k, v in sample.meta["box_meta"].items()}
            out.meta["pasted"] = len(chosen)
        return out


def _extend(arr: np.ndarray, n: int) -> np.ndarray:
    """Append ``n`` filler rows (empty string / -1 / NaN by dtype) to a per-box meta array."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "US":
        fill = np.full((n,) + arr.shape[1:], "", dtype=arr.dtype)
    elif arr.dtype.kind in "iub":
        fill = np.full((n,) + arr.shape[1:], -1, dtype=arr.dtype)
    else:
        fill = np.full((n,) + arr.shape[1:], np.nan, dtype=np.float64)
    return np.concatenate([arr, fill])
