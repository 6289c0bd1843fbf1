"""Vectorised ray casting against oriented boxes and the ground plane (numpy, float64).

Shared by the spinning LiDAR and the pinhole cameras. A :class:`HitBuffer` keeps, per ray,
the nearest hit distance ``t``, the primitive index, the hit face normal (global frame) and
the hit point in the primitive's own frame (for textures).
"""
from __future__ import annotations

import numpy as np

from kd3d.data.synth.scene import Prims


def ray_box(origin: np.ndarray, dirs: np.ndarray, box: np.ndarray):
    """Intersect rays from one point with one oriented box (slab method).

    ``origin`` (3,) global, ``dirs`` (R, 3) (any length; ``t`` is in units of it), ``box`` (7,)
    ``x y z l w h yaw``. Returns ``t`` (R,) entry distance (inf on a miss or when the origin is
    inside), ``axis`` (R,) index of the entered face's axis (0 x, 1 y, 2 z of the box frame),
    ``p`` (3,) the origin and ``d`` (R, 3) the directions in the box frame.
    """
    c, s = np.cos(box[6]), np.sin(box[6])
    rx, ry, rz = (np.asarray(origin, dtype=np.float64) - box[:3]).tolist()
    p = np.array([rx * c + ry * s, -rx * s + ry * c, rz])
    d = np.empty((dirs.shape[0], 3))
    d[:, 0] = dirs[:, 0] * c + dirs[:, 1] * s
    d[:, 1] = dirs[:, 1] * c - dirs[:, 0] * s
    d[:, 2] = dirs[:, 2]
    half = box[3:6] / 2
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inv = 1.0 / d
        ta = (-half - p) * inv
        tb = (half - p) * inv
    near = np.fmin(ta, tb)
    far = np.fmax(ta, tb)
    nx, ny, nz = near[:, 0], near[:, 1], near[:, 2]
    tn = np.maximum(np.maximum(nx, ny), nz)
    tf = np.minimum(np.minimum(far[:, 0], far[:, 1]), far[:, 2])
    axis = np.where((nx >= ny) & (nx >= nz), 0, np.where(ny >= nz, 1, 2))
    t = np.where((tn <= tf) & (tn > 1e-6), tn, np.inf)
    return t, axis, p, d


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
        t, axis, p, d = ray_box(self.origin, self.dirs[rays], box)
        hit = t < self.max_range
        closer = hit & (t < self.t[rays])
        r = rays[closer]
        if r.size:
            tc, ax, dc = t[closer], axis[closer], d[closer]
            self.t[r] = tc
            self.prim[r] = index
            self.local[r] = p + tc[:, None] * dc
            k = np.arange(r.size)
            n_local = np.zeros((r.size, 3))
            n_local[k, ax] = -np.sign(dc[k, ax])
            c, s = np.cos(box[6]), np.sin(box[6])
            normal = np.empty((r.size, 3))
            normal[:, 0] = n_local[:, 0] * c - n_local[:, 1] * s
            normal[:, 1] = n_local[:, 0] * s + n_local[:, 1] * c
            normal[:, 2] = n_local[:, 2]
            self.normal[r] = normal
        return rays[hit]

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
