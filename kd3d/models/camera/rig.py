"""Hand-made pinhole camera rigs (tests, synthetic data, benchmarks).

:func:`ring_rig` places ``num_cams`` cameras on a ring around the LiDAR origin, evenly spaced
in yaw (camera 0 looks along +x), optical axis horizontal. Camera frame: x right, y down,
z forward; LiDAR frame: x forward, y left, z up.
"""
from __future__ import annotations

import math

import numpy as np


def camera_rotation(yaw: float) -> np.ndarray:
    """(3, 3) rotation camera -> LiDAR for a level camera looking along LiDAR yaw ``yaw`` (rad)."""
    fwd = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    right = np.array([math.sin(yaw), -math.cos(yaw), 0.0])
    down = np.array([0.0, 0.0, -1.0])
    return np.stack([right, down, fwd], axis=1)


def ring_rig(
    num_cams: int, image_size: tuple[int, int], *, hfov_deg: float | None = None, height: float = 1.6, radius: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Intrinsics (NC, 3, 3) and cam2lidar (NC, 4, 4), float64.

    image_size: (H, W) pixels; ``hfov_deg`` defaults to ``360 / num_cams`` plus 10 degrees of
    overlap (capped at 120). Principal point at the image centre (continuous pixel coordinates,
    pixel ``i`` spans ``[i, i+1)``, as in :mod:`kd3d.data.transforms`).
    """
    h, w = image_size
    if num_cams < 1:
        raise ValueError(f"ring_rig: num_cams must be >= 1, got {num_cams}")
    hfov = min(360.0 / num_cams + 10.0, 120.0) if hfov_deg is None else float(hfov_deg)
    f = (w / 2) / math.tan(math.radians(hfov) / 2)
    k = np.array([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    intr = np.repeat(k[None], num_cams, 0)
    c2l = np.repeat(np.eye(4)[None], num_cams, 0)
    for i in range(num_cams):
        yaw = 2 * math.pi * i / num_cams
        c2l[i, :3, :3] = camera_rotation(yaw)
        c2l[i, :3, 3] = [radius * math.cos(yaw), radius * math.sin(yaw), height]
    return intr, c2l


def scale_crop_aug(scale: float, crop_xy: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(3, 3) pixel-space image augmentation: resize by ``scale`` then crop at ``crop_xy``:
    ``u' = scale * u - crop_x`` (continuous pixel coordinates)."""
    a = np.eye(3)
    a[0, 0] = a[1, 1] = scale
    a[0, 2] = -crop_xy[0]
    a[1, 2] = -crop_xy[1]
    return a
