"""Small geometry helpers shared by every frame conversion (numpy, float64)."""
from __future__ import annotations

import numpy as np


def limit_period(angle, offset: float = 0.5, period: float = 2 * np.pi):
    """Wrap ``angle`` into ``[-offset * period, (1 - offset) * period)``; default [-pi, pi)."""
    angle = np.asarray(angle, dtype=np.float64)
    return angle - np.floor(angle / period + offset) * period


def rotation_z(angle: float) -> np.ndarray:
    """3x3 rotation about +z by ``angle`` (counter-clockwise seen from above)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 4x4 (or 3x4) homogeneous transform to (N, 3) points; extra columns are dropped."""
    p = np.asarray(points, dtype=np.float64)[:, :3]
    m = np.asarray(matrix, dtype=np.float64)
    return p @ m[:3, :3].T + m[:3, 3]


def pose_matrix(rotation, translation) -> np.ndarray:
    """4x4 matrix from a quaternion ``w x y z`` (or a 3x3 matrix) and a translation (3,)."""
    m = np.eye(4)
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape == (4,):
        from pyquaternion import Quaternion

        rot = Quaternion(rot).rotation_matrix
    m[:3, :3] = rot
    m[:3, 3] = np.asarray(translation, dtype=np.float64)
    return m


def matrix_to_quaternion(rot: np.ndarray) -> list[float]:
    """Quaternion ``w x y z`` (w >= 0) of a 3x3 rotation matrix."""
    from pyquaternion import Quaternion

    u, _, vt = np.linalg.svd(np.asarray(rot, dtype=np.float64))
    q = Quaternion(matrix=u @ vt)
    if q.w < 0:
        q = -q
    return [float(v) for v in q.elements]
