"""Sensor rigs of the synthetic datasets: nuScenes-like (LIDAR_TOP + 6 cameras) and KITTI.

Ego frame: x forward, y left, z up, origin on the ground below the rear axle. The LIDAR_TOP
calibration is a pure translation (sensor axes = ego axes); camera frames are x right,
y down, z forward. Image sizes are configurable; intrinsics scale with them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.data.synth.camera import intrinsics
from kd3d.structures.calib import KittiCalib

LIDAR_TRANSLATION = (0.943713, 0.0, 1.84023)


@dataclass(frozen=True)
class CameraSpec:
    channel: str
    yaw_deg: float          # optical axis heading in the ego frame (0 = forward, + = left)
    translation: tuple[float, float, float]
    hfov_deg: float


NUSC_CAMERAS: tuple[CameraSpec, ...] = (
    CameraSpec("CAM_FRONT", 0.0, (1.70, 0.0, 1.51), 70.0),
    CameraSpec("CAM_FRONT_RIGHT", -55.0, (1.55, -0.49, 1.50), 70.0),
    CameraSpec("CAM_BACK_RIGHT", -110.0, (1.04, -0.48, 1.56), 70.0),
    CameraSpec("CAM_BACK", 180.0, (0.03, 0.0, 1.57), 110.0),
    CameraSpec("CAM_BACK_LEFT", 110.0, (1.04, 0.48, 1.56), 70.0),
    CameraSpec("CAM_FRONT_LEFT", 55.0, (1.52, 0.49, 1.51), 70.0),
)


def lidar_to_ego() -> np.ndarray:
    """4x4 LIDAR_TOP -> ego (identity rotation)."""
    m = np.eye(4)
    m[:3, 3] = LIDAR_TRANSLATION
    return m


def camera_to_ego(spec: CameraSpec) -> np.ndarray:
    """4x4 camera -> ego for a level camera looking along ``spec.yaw_deg``."""
    yaw = np.deg2rad(spec.yaw_deg)
    m = np.eye(4)
    m[:3, 0] = (np.sin(yaw), -np.cos(yaw), 0.0)   # x right
    m[:3, 1] = (0.0, 0.0, -1.0)                   # y down
    m[:3, 2] = (np.cos(yaw), np.sin(yaw), 0.0)    # z forward
    m[:3, 3] = spec.translation
    return m


def camera_intrinsic(spec: CameraSpec, width: int, height: int) -> np.ndarray:
    return intrinsics(width, height, spec.hfov_deg)


# ---------------------------------------------------------------- KITTI
KITTI_VELO_HEIGHT = 1.73
KITTI_FULL_SIZE = (1242, 375)


def kitti_calib(width: int = 1242, height: int = 375) -> KittiCalib:
    """A realistic KITTI calibration, with P0..P3 scaled to a ``width`` x ``height`` image.

    Velodyne: x forward, y left, z up, 1.73 m above the ground. Camera 0 (reference) sits
    0.27 m ahead of and 0.08 m below the Velodyne; camera 2 is 6 cm to its left; R0_rect is a
    small rotation. ``x_rect = R0_rect @ Tr_velo_to_cam @ x_velo``; image = P2 @ x_rect.
    """
    sx, sy = width / KITTI_FULL_SIZE[0], height / KITTI_FULL_SIZE[1]
    f, cx, cy = 721.5377, 609.5593, 172.854

    def proj(baseline_x: float) -> np.ndarray:
        k = np.array([[f * sx, 0.0, cx * sx], [0.0, f * sy, cy * sy], [0.0, 0.0, 1.0]])
        return np.concatenate([k, k @ np.array([[baseline_x], [0.0], [0.0]])], axis=1)

    velo_to_cam_rot = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    small = _small_rotation(0.004, -0.006, 0.002)
    rot = small @ velo_to_cam_rot
    cam_centre_velo = np.array([0.27, 0.0, -0.08])
    tr = np.concatenate([rot, (-rot @ cam_centre_velo)[:, None]], axis=1)
    return KittiCalib(
        P2=proj(0.06), R0_rect=_small_rotation(0.0, 0.0, 0.005), Tr_velo_to_cam=tr,
        P0=proj(0.0), P1=proj(-0.54), P3=proj(-0.47),
        Tr_imu_to_velo=np.concatenate([np.eye(3), np.array([[-0.81], [0.32], [-0.8]])], axis=1),
    )


def kitti_camera(calib: KittiCalib) -> tuple[np.ndarray, np.ndarray]:
    """Camera-2 pose and intrinsics for rendering: (4x4 camera -> velodyne, 3x3 K).

    With ``P2 = [K | K b]`` the camera centre in the rectified frame is ``-b``.
    """
    K = calib.P2[:, :3]
    b = np.linalg.solve(K, calib.P2[:, 3])
    rect_to_velo = np.linalg.inv(calib.velo_to_rect)
    m = np.eye(4)
    m[:3, :3] = rect_to_velo[:3, :3]
    m[:3, 3] = rect_to_velo[:3, :3] @ (-b) + rect_to_velo[:3, 3]
    return m, K


def _small_rotation(rx: float, ry: float, rz: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    rxm = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rym = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rzm = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rzm @ rym @ rxm
