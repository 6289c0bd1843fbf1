"""KITTI calibration (the ``calib/*.txt`` file): parsing, writing and projections."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kd3d.structures.geometry import transform_points

_KEYS_3x4 = ("P0", "P1", "P2", "P3", "Tr_velo_to_cam", "Tr_imu_to_velo")


@dataclass
class KittiCalib:
    """KITTI object calibration.

    ``P0..P3`` (3, 4) rectified camera projections; ``R0_rect`` (3, 3);
    ``Tr_velo_to_cam`` (3, 4) velodyne -> reference camera; ``Tr_imu_to_velo`` (3, 4).
    The label frame is the rectified camera frame: ``x_rect = R0_rect @ Tr_velo_to_cam @ x_velo``.
    """

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    P0: np.ndarray = field(default_factory=lambda: np.eye(3, 4))
    P1: np.ndarray = field(default_factory=lambda: np.eye(3, 4))
    P3: np.ndarray = field(default_factory=lambda: np.eye(3, 4))
    Tr_imu_to_velo: np.ndarray = field(default_factory=lambda: np.eye(3, 4))

    @property
    def velo_to_rect(self) -> np.ndarray:
        """4x4 velodyne -> rectified camera transform."""
        r0 = np.eye(4)
        r0[:3, :3] = self.R0_rect
        tr = np.eye(4)
        tr[:3, :] = self.Tr_velo_to_cam
        return r0 @ tr

    def rect_to_image(self, points_rect: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project (N, 3) rectified-camera points with P2 -> ((N, 2) pixels, (N,) depth)."""
        p = np.asarray(points_rect, dtype=np.float64)
        hom = np.concatenate([p, np.ones((p.shape[0], 1))], axis=1) @ self.P2.T
        depth = hom[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = hom[:, :2] / depth[:, None]
        return uv, depth

    def velo_to_image(self, points_velo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.rect_to_image(transform_points(points_velo, self.velo_to_rect))

    def project_rect_to_bbox(self, corners_rect: np.ndarray, image_shape=None) -> np.ndarray:
        """(N, 8, 3) rectified corners -> (N, 4) ``x1 y1 x2 y2``, clipped to ``image_shape``
        (H, W) when given. Corners behind the camera are clamped to 0.1 m depth first."""
        n = corners_rect.shape[0]
        if n == 0:
            return np.zeros((0, 4))
        c = corners_rect.reshape(-1, 3).copy()
        c[:, 2] = np.maximum(c[:, 2], 0.1)
        uv, _ = self.rect_to_image(c)
        uv = uv.reshape(n, 8, 2)
        box = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
        if image_shape is not None:
            h, w = image_shape
            box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w - 1)
            box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h - 1)
        return box

    # ------------------------------------------------------------------ I/O
    @classmethod
    def from_file(cls, path: str | Path) -> "KittiCalib":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"KITTI calibration file not found: {path}")
        values: dict[str, np.ndarray] = {}
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            key, sep, rest = line.partition(":")
            if not sep:
                raise ValueError(f"{path}:{lineno}: expected 'KEY: numbers', got {line!r}")
            try:
                values[key.strip()] = np.array([float(v) for v in rest.split()], dtype=np.float64)
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: non-numeric value in {key.strip()}") from exc
        if "R0_rect" not in values and "R_rect" in values:
            values["R0_rect"] = values.pop("R_rect")
        if "Tr_velo_to_cam" not in values and "Tr_velo_cam" in values:
            values["Tr_velo_to_cam"] = values.pop("Tr_velo_cam")
        kwargs = {}
        for key in ("P2", "R0_rect", "Tr_velo_to_cam"):
            if key not in values:
                raise ValueError(f"{path}: missing field {key!r} in KITTI calibration")
        for key, v in values.items():
            if key == "R0_rect":
                if v.size != 9:
                    raise ValueError(f"{path}: R0_rect must have 9 numbers, got {v.size}")
                kwargs[key] = v.reshape(3, 3)
            elif key in _KEYS_3x4:
                if v.size != 12:
                    raise ValueError(f"{path}: {key} must have 12 numbers, got {v.size}")
                kwargs[key] = v.reshape(3, 4)
        return cls(**kwargs)

    def to_text(self) -> str:
        lines = []
        for key in ("P0", "P1", "P2", "P3"):
            lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in getattr(self, key).reshape(-1)))
        lines.append("R0_rect: " + " ".join(f"{v:.12e}" for v in self.R0_rect.reshape(-1)))
        for key in ("Tr_velo_to_cam", "Tr_imu_to_velo"):
            lines.append(f"{key}: " + " ".join(f"{v:.12e}" for v in getattr(self, key).reshape(-1)))
        return "\n".join(lines) + "\n"
