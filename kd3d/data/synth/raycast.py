"""Vectorised ray casting against oriented boxes and the ground plane (numpy, float64).

Shared by the spinning LiDAR and the pinhole cameras. A :class:`HitBuffer` keeps, per ray,
the nearest hit distance ``t``, the primitive index, the hit face normal (global frame) and
the hit point in the primitive's own frame (for textures).
"""
from __future__ import annotations

import numpy as np

from kd3d.data.synth.scene import Prims


def ray_box(origin: np.ndarray, dirs: np.ndarray, box: np.ndarray):
    """Intersect rays with one oriented box.

    ``origin`` (3,) or (R, 3) global, ``dirs`` (R, 3) (any length; ``t`` is in units of it),
    ``box`` (7,) ``x y z l w h yaw``. Returns ``t`` (R,) entry distance (inf on a miss or when
    the origin is inside), ``axis`` (R,) index of the entered face's axis and ``local`` (R, 3)
    entry points in the box frame.
    """
    c, s = np.cos(box[6]), np.sin(box[6])
    rel = origin - box[:3]
    if rel.ndim == 1:
        rel = rel[None]
    p = np.stack([rel[:, 0] * c + rel[:, 1] * s, -rel[:, 0] * s + rel[:, 1] * c, rel[:, 2]], axis=1)
    d = np.stack([dirs[:, 0] * c + dirs[:, 1] * s, -dirs[:, 0] * s + dirs[:, 1] * c, dirs[:, 2]], axis=1)
    half = box[3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-half - p) * inv
        t2 = (half - p) * inv
    t_near = np.fmin(t1, t2)
    t_far = np.fmax(t1, t2)
    # rays parallel to a slab: inside the slab -> (-inf, inf), outside -> miss
    parallel = d == 0
    inside = np.abs(p) <= half
    t_near = np.where(parallel, np.where(inside, -np.inf, np.inf), t_near)
    t_far = np.where(parallel, np.where(inside, np.inf, -np.inf), t_far)
    axis = np.argmax(t_near, axis=1)
    tn = t_near.max(axis=1)
    tf = t_far.min(axis=1)
    hit = (tn <= tf) & (tn > 1e-6)
    t = np.where(hit, tn, np.inf)
    local = p + np.where(hit, tn, 0.0)[:, None] * d
    return t, axis, local


class HitBuffer:
    """Nearest hits of R rays from ``origin`` (3,) along ``dirs`` (R, 3) unit vectors."""

    def __init__(self, origin: np.ndarray, dirs: np.ndarray, max_range: float):
        n = dirs.shape[0]
        self.origin = np.asarray(origin, dtype=np.float64)
        self.dirs = dirs
        self.t = np.full(n, np.inf)
        self.prim = np.full(n, -1, dtype=np.int64)
        self.normal = np.zeros((n, 3))
        self.local = np.zeros((n, 3))
        self.max_range = max_range

    def add_box(self, index: int, box: np.ndarray, rays: np.ndarray | None = None) -> np.ndarray:
        """Test primitive ``index`` against ``rays`` (indices; all when None); returns the
        indices of rays that hit the box at all (occluded or not)."""
        rays = np.arange(self.t.shape[0]) if rays is None else rays
        if rays.size == 0:
            return rays
        t, axis, local = ray_box(self.origin, self.dirs[rays], box)
        hit = np.isfinite(t) & (t < self.max_range)
        closer = hit & (t < self.t[rays])
        r = rays[closer]
        self.t[r] = t[closer]
        self.prim[r] = index
        self.local[r] = local[closer]
        ax = axis[closer]
        n_local = np.zeros((r.size, 3))
        n_local[np.arange(r.size), ax] = -np.sign(self.local_dir(rays[closer], box)[np.arange(r.size), ax])
        c, s = np.cos(box[6]), np.sin(box[6])
        self.normal[r] = np.stack([n_local[:, 0] * c - n_local[:, 1] * s,
                                   n_local[:, 0] * s + n_local[:, 1] * c, n_local[:, 2]], axis=1)
        return rays[hit]

    def local_dir(self, rays, box):
        c, s = np.cos(box[6]), np.sin(box[6])
        d = self.dirs[rays]
        return np.stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c, d[:, 2]], axis=1)

    def add_ground(self) -> np.ndarray:
        """Intersect the ground plane z = 0 where nothing nearer was hit; returns (R,) bool mask
        of rays whose nearest hit is the ground."""
        dz = self.dirs[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(dz < -1e-9, -self.origin[2] / dz, np.inf)
        ground = (t < self.t) & (t < self.max_range)
        self.t[ground] = t[ground]
        self.prim[ground] = -1
        self.normal[ground] = (0.0, 0.0, 1.0)
        return ground

    def points(self) -> np.ndarray:
        """(R, 3) global hit points (inf where nothing was hit)."""
        return self.origin + self.t[:, None] * self.dirs


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """(P, 7) boxes -> (P, 8, 3) global corners."""
    unit = np.array([[sx, sy, sz] for sx in (-0.5, 0.5) for sy in (-0.5, 0.5) for sz in (-0.5, 0.5)])
    local = unit[None] * boxes[:, None, 3:6]
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], axis=-1) + boxes[:, None, :3]


def inside_footprint(point: np.ndarray, prims: Prims, margin: float = 0.0) -> np.ndarray:
    """(P,) bool: ``point`` (3,) lies inside the box (grown by ``margin``)."""
    b = prims.boxes
    rel = point[None, :3] - b[:, :3]
    c, s = np.cos(b[:, 6]), np.sin(b[:, 6])
    lx = rel[:, 0] * c + rel[:, 1] * s
    ly = -rel[:, 0] * s + rel[:, 1] * c
    half = b[:, 3:6] / 2 + margin
    return (np.abs(lx) <= half[:, 0]) & (np.abs(ly) <= half[:, 1]) & (np.abs(rel[:, 2]) <= half[:, 2])
