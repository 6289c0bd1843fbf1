"""Headless rasterisation helpers (numpy + PIL): point splats, line segments, pinhole cameras.

Images are (H, W, 3) uint8 arrays. Pixel coordinates ``(u, v)`` = (column, row) are continuous
with the origin at the top-left corner of the image: pixel ``i`` spans ``[i, i + 1)`` (the
convention of ``kd3d.data.transforms`` and the camera geometry), so a point at ``u`` lands in
column ``floor(u)``; PIL draws a line vertex at ``(int(u), int(v))``, the same pixel. No
display and no GPU are needed.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Box edges as corner-index pairs for Boxes3D.corners() order (bottom 0-3, top 4-7).
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]]
)
# The front face (corners 0, 3, 4, 7) gets a cross so the heading reads in perspective views.
FRONT_CROSS = np.array([[0, 7], [3, 4]])


def splat_points(img: np.ndarray, uv: np.ndarray, colors: np.ndarray, radius: int = 0,
                 order: np.ndarray | None = None) -> np.ndarray:
    """Paint points into ``img`` (H, W, 3) uint8 in place and return it.

    ``uv``: (N, 2) float pixel coordinates; ``colors``: (N, 3) uint8; ``radius``: half-size of
    the square splat in pixels (0 = one pixel). ``order``: (N,) painting priority, points with
    larger values are painted last (on top); default the given order.
    """
    h, w = img.shape[:2]
    uv = np.asarray(uv, dtype=np.float64)
    colors = np.asarray(colors, dtype=np.uint8)
    if order is not None:
        idx = np.argsort(order, kind="stable")
        uv, colors = uv[idx], colors[idx]
    ui = np.floor(uv[:, 0]).astype(np.int64)
    vi = np.floor(uv[:, 1]).astype(np.int64)
    for du in range(-radius, radius + 1):
        for dv in range(-radius, radius + 1):
            u, v = ui + du, vi + dv
            ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
            img[v[ok], u[ok]] = colors[ok]  # later points overwrite earlier ones
    return img


def dashed(segments: np.ndarray, dash: float = 6.0) -> np.ndarray:
    """Split (S, 2, 2) pixel segments into dashes of length ``dash`` (every other piece kept)."""
    out = []
    for a, b in np.asarray(segments, dtype=np.float64):
        length = float(np.hypot(*(b - a)))
        n = max(int(length // dash), 1)
        ts = np.linspace(0.0, 1.0, n + 1)
        for k in range(0, n, 2):
            out.append([a + (b - a) * ts[k], a + (b - a) * ts[k + 1]])
    return np.array(out).reshape(-1, 2, 2)


def draw_segments(draw: ImageDraw.ImageDraw, segments: np.ndarray, color, width: int = 1,
                  dash: float | None = None) -> None:
    """Draw (S, 2, 2) pixel segments ``[[u0, v0], [u1, v1]]``; ``dash`` (px) makes them dashed."""
    segs = np.asarray(segments, dtype=np.float64).reshape(-1, 2, 2)
    if dash:
        segs = dashed(segs, dash)
    for (u0, v0), (u1, v1) in segs:
        if np.isfinite([u0, v0, u1, v1]).all():
            draw.line([(u0, v0), (u1, v1)], fill=tuple(int(c) for c in color), width=width)


def font(size: int = 12):
    """PIL's built-in font at ``size`` (no system font files needed)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no size argument
        return ImageFont.load_default()


def draw_text(draw: ImageDraw.ImageDraw, xy, text: str, color=(255, 255, 255), size: int = 12,
              bg=(0, 0, 0)) -> None:
    """Text with a dark backing box at pixel ``xy`` (top-left)."""
    f = font(size)
    box = draw.textbbox(xy, text, font=f)
    if bg is not None:
        draw.rectangle(box, fill=tuple(bg))
    draw.text(xy, text, fill=tuple(int(c) for c in color), font=f)


def clip_segments_near(p0: np.ndarray, p1: np.ndarray, near: float = 0.1):
    """Clip 3D segments (S, 3) -> (S, 3) in a camera frame (z forward) to ``z >= near``.

    Returns ``(q0, q1, keep)``; segments entirely behind the plane have ``keep = False``.
    """
    p0 = np.asarray(p0, dtype=np.float64).copy()
    p1 = np.asarray(p1, dtype=np.float64).copy()
    z0, z1 = p0[:, 2].copy(), p1[:, 2].copy()
    keep = (z0 >= near) | (z1 >= near)
    dz = np.where(z1 - z0 == 0, 1.0, z1 - z0)
    t = ((near - z0) / dz)[:, None]
    hit = p0 + t * (p1 - p0)  # where the segment crosses the near plane
    a = (z0 < near) & keep
    b = (z1 < near) & keep
    p0[a] = hit[a]
    p1[b] = hit[b]
    return p0, p1, keep


def project_pinhole(points_cam: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(N, 3) camera-frame points (z forward) -> (N, 2) pixels through a 3x3 ``intrinsics``."""
    p = np.asarray(points_cam, dtype=np.float64)
    uvw = p @ np.asarray(intrinsics, dtype=np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return uvw[:, :2] / uvw[:, 2:3]


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """4x4 world -> camera transform for a camera at ``eye`` looking at ``target``.

    Camera frame: x right, y down, z forward (the OpenCV / nuScenes camera convention).
    """
    eye = np.asarray(eye, dtype=np.float64)
    fwd = np.asarray(target, dtype=np.float64) - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.asarray(up, dtype=np.float64))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd])  # rows: camera axes in world coordinates
    m = np.eye(4)
    m[:3, :3] = rot
    m[:3, 3] = -rot @ eye
    return m


def to_image(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8))


def save_png(img, path) -> str:
    """Save an array or PIL image as PNG; returns the path as str."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    (img if isinstance(img, Image.Image) else to_image(img)).save(path)
    return str(path)
