"""Pinhole cameras rendered by ray casting a :class:`~kd3d.data.synth.scene.SynthScene`.

Camera frame: x right, y down, z forward (the nuScenes / KITTI / OpenCV convention); pixel
``(u, v)`` has its centre at ``(u + 0.5, v + 0.5)`` in ``K``'s coordinates. Each primitive is
only tested against the pixels inside its projected (near-plane clipped) bounding rectangle,
so every visible surface is exact, with a z-buffer, Lambertian shading, class colours, road
markings, building windows and distance fog. The render also returns the per-pixel lidarseg
class and object index, which tests use to check that projected LiDAR points land on the
objects they hit.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from kd3d.data.synth import catalog
from kd3d.data.synth.raycast import HitBuffer, box_corners
from kd3d.data.synth.scene import TEX_WINDOWS, SynthScene

SKY_SEG = 255
SUN = np.array([0.35, 0.25, 0.9]) / np.linalg.norm([0.35, 0.25, 0.9])
_EDGES = [(a, b) for a in range(8) for b in range(a + 1, 8) if bin(a ^ b).count("1") == 1]


def intrinsics(width: int, height: int, hfov_deg: float) -> np.ndarray:
    """3x3 K of a centred pinhole camera with horizontal field of view ``hfov_deg``."""
    f = (width / 2) / np.tan(np.deg2rad(hfov_deg) / 2)
    return np.array([[f, 0.0, width / 2], [0.0, f, height / 2], [0.0, 0.0, 1.0]])


def _pixel_window(corners_cam: np.ndarray, K: np.ndarray, width: int, height: int, near: float = 0.05):
    """Pixel rectangle (u0, u1, v0, v1) covering a box given its (8, 3) camera-frame corners,
    or None when it is behind the camera or off-image."""
    z = corners_cam[:, 2]
    if np.all(z < near):
        return None
    pts = [corners_cam[z >= near]]
    for a, b in _EDGES:
        if (z[a] < near) != (z[b] < near):
            w = (near - z[a]) / (z[b] - z[a])
            pts.append((corners_cam[a] + w * (corners_cam[b] - corners_cam[a]))[None])
    p = np.concatenate(pts)
    uv = (p @ K.T)[:, :2] / p[:, 2:3]
    u0, v0 = np.floor(uv.min(axis=0) - 0.5).astype(int)
    u1, v1 = np.ceil(uv.max(axis=0) + 0.5).astype(int)
    u0, v0 = max(u0, 0), max(v0, 0)
    u1, v1 = min(u1, width - 1), min(v1, height - 1)
    if u0 > u1 or v0 > v1:
        return None
    return u0, u1, v0, v1


@lru_cache(maxsize=16)
def _pixel_rays(width: int, height: int, k: tuple) -> tuple[np.ndarray, np.ndarray]:
    """Unit camera-frame rays through the pixel centres, (H*W, 3), and their z-normalised length."""
    K = np.array(k).reshape(3, 3)
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    y = (v - K[1, 2]) / K[1, 1]
    x = (u - K[0, 2] - K[0, 1] * y) / K[0, 0]
    d_cam = np.stack([x, y, np.ones_like(u)], axis=-1).reshape(-1, 3)
    norm = np.linalg.norm(d_cam, axis=1)
    unit = d_cam / norm[:, None]
    unit.setflags(write=False)
    norm.setflags(write=False)
    return unit, norm


def render(scene: SynthScene, t: float, cam2global: np.ndarray, K: np.ndarray, width: int, height: int,
           rng: np.random.Generator, max_range: float = 150.0) -> dict:
    """Render the scene at time ``t`` from a camera with pose ``cam2global`` (4x4) and
    intrinsics ``K`` (3, 3).

    Returns ``image`` (H, W, 3) uint8 RGB, ``depth`` (H, W) float32 camera z in metres (inf for
    sky), ``seg`` (H, W) uint8 lidarseg index (255 sky), ``inst`` (H, W) int32 object index
    (-1 background), ``visible_px`` and ``total_px``: dict object index -> pixel counts of the
    object when occlusion is / is not considered.
    """
    origin = cam2global[:3, 3]
    unit, norm = _pixel_rays(width, height, tuple(np.asarray(K, dtype=np.float64).reshape(-1).tolist()))
    dirs = unit @ cam2global[:3, :3].T
    buf = HitBuffer(origin, dirs, max_range)
    prims = scene.prims(t, center=origin, radius=max_range)
    g2c = np.linalg.inv(cam2global)
    corners = box_corners(prims.boxes) @ g2c[:3, :3].T + g2c[:3, 3]
    covered: dict[int, list[np.ndarray]] = {}
    for i in range(len(prims.boxes)):
        win = _pixel_window(corners[i], K, width, height)
        if win is None:
            continue
        u0, u1, v0, v1 = win
        rays = (np.arange(v0, v1 + 1)[:, None] * width + np.arange(u0, u1 + 1)[None, :]).reshape(-1)
        hit = buf.add_box(i, prims.boxes[i], rays)
        if prims.inst[i] >= 0 and hit.size:
            covered.setdefault(int(prims.inst[i]), []).append(hit)
    ground = buf.add_ground()

    n = width * height
    color = np.empty((n, 3))
    seg = np.full(n, SKY_SEG, dtype=np.uint8)
    inst = np.full(n, -1, dtype=np.int32)
    sky = ~np.isfinite(buf.t)
    elev = np.clip(dirs[sky, 2], -0.2, 1.0)[:, None]
    color[sky] = np.array([0.78, 0.85, 0.95]) * (1 - elev) + np.array([0.35, 0.55, 0.85]) * elev
    # ground
    gi = np.nonzero(ground)[0]
    gp = buf.points()[gi]
    g_seg, s, d, marking = scene.road.surface(gp[:, :2])
    seg[gi] = g_seg
    gcol = catalog.SEG_COLORS[g_seg].copy()
    tiles = (g_seg == catalog.SEG["flat.sidewalk"]) & ((np.mod(s, 1.5) < 0.06) | (np.mod(d, 1.5) < 0.06))
    gcol[tiles] *= 0.75
    gcol *= (0.9 + 0.1 * np.sin(gp[:, 0] * 3.1) * np.sin(gp[:, 1] * 2.7))[:, None]
    gcol[marking] = (0.92, 0.92, 0.90)
    color[gi] = gcol
    # primitives
    oi = np.nonzero(np.isfinite(buf.t) & ~ground)[0]
    p = buf.prim[oi]
    seg[oi] = prims.segs[p]
    inst[oi] = prims.inst[p]
    shade = 0.45 + 0.55 * np.clip(buf.normal[oi] @ SUN, 0, 1)
    ocol = prims.colors[p] * shade[:, None]
    tex = prims.tex[p] == TEX_WINDOWS
    if tex.any():
        loc = buf.local[oi[tex]]
        half = prims.boxes[p[tex], 3:6] / 2
        along = np.where(np.abs(buf.normal[oi[tex], 2]) > 0.5, 0.0,
                         np.where(np.abs(np.abs(loc[:, 0]) - half[:, 0]) < 1e-3, loc[:, 1], loc[:, 0]))
        height_ = loc[:, 2] + half[:, 2]
        win = (np.mod(along, 3.0) > 0.9) & (np.mod(along, 3.0) < 2.1) & (np.mod(height_, 3.5) > 1.0) \
            & (np.mod(height_, 3.5) < 2.5) & (np.abs(buf.normal[oi[tex], 2]) < 0.5)
        sub = ocol[tex]
        sub[win] = catalog.GLASS * 1.4
        ocol[tex] = sub
    color[oi] = ocol
    # distance fog and sensor noise
    hit = ~sky
    fog = np.exp(-buf.t[hit] / 400.0)[:, None]
    color[hit] = color[hit] * fog + np.array([0.78, 0.85, 0.95]) * (1 - fog)
    color += rng.standard_normal(color.shape, dtype=np.float32) * 0.012
    image = (np.clip(color, 0, 1) * 255 + 0.5).astype(np.uint8).reshape(height, width, 3)

    depth = np.where(np.isfinite(buf.t), buf.t / norm, np.inf).astype(np.float32).reshape(height, width)
    visible = np.bincount(inst[inst >= 0], minlength=len(scene.objects))
    total = {k: int(np.unique(np.concatenate(v)).size) for k, v in covered.items()}
    visible_px = {k: int(visible[k]) for k in total}
    return {"image": image, "depth": depth, "seg": seg.reshape(height, width),
            "inst": inst.reshape(height, width), "visible_px": visible_px, "total_px": total}
