"""3D boxes in the LiDAR frame, and the one place where box conventions are converted.

kd3d's box convention (``Boxes3D``):

* frame: the LiDAR sensor frame, right-handed, z up. For KITTI and kd3d's synthetic data
  x points forward and y left; for real nuScenes the LIDAR_TOP frame is whatever its
  ``calibrated_sensor`` record says (x right, y forward on the real car). Nothing in kd3d
  assumes which way x points: ranges are symmetric and all conversions use the calibrations.
* ``data``: (N, 9) float64 ``x y z l w h yaw vx vy``.
  ``x y z`` is the box *centre* (not the bottom), ``l`` the extent along the heading,
  ``w`` across it, ``h`` vertical. ``yaw`` is the heading about +z, measured from +x towards +y,
  in radians. ``vx vy`` is the velocity in m/s in the same frame (NaN when unknown).

Converters:

* nuScenes (global frame): ``translation`` (centre), ``size`` as ``w l h``, ``rotation`` as a
  quaternion ``w x y z``, ``velocity`` (vx, vy) in the global frame. Use ``to_nuscenes`` /
  ``from_nuscenes`` with the LiDAR->ego and ego->global poses.
* KITTI (rectified camera frame, y down, z forward): ``location`` is the *bottom* centre,
  ``dimensions`` are ``h w l``, ``rotation_y`` is the heading about the camera y axis
  (0 = facing camera +x), ``alpha`` the observation angle ``ry - atan2(x, z)``.
  Use ``to_kitti`` / ``from_kitti`` with a :class:`~kd3d.structures.calib.KittiCalib`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.structures.geometry import limit_period, rotation_z, transform_points

BOX_DIM = 9

# Corner order of ``Boxes3D.corners``: bottom face counter-clockwise seen from above, starting
# at front-left (+l/2, +w/2), then the top face in the same order.
_UNIT_CORNERS = np.array(
    [
        [0.5, 0.5, -0.5], [-0.5, 0.5, -0.5], [-0.5, -0.5, -0.5], [0.5, -0.5, -0.5],
        [0.5, 0.5, 0.5], [-0.5, 0.5, 0.5], [-0.5, -0.5, 0.5], [0.5, -0.5, 0.5],
    ]
)


class Boxes3D:
    """N boxes in the LiDAR frame, ``data`` (N, 9) float64 ``x y z l w h yaw vx vy``.

    A (N, 7) input gets NaN velocities. Instances are treated as immutable: every transform
    returns a new object.
    """

    __slots__ = ("data",)

    def __init__(self, data=None):
        if data is None:
            data = np.zeros((0, BOX_DIM))
        arr = np.asarray(data, dtype=np.float64)
        if arr.ndim == 1 and arr.size == 0:
            arr = arr.reshape(0, BOX_DIM)
        if arr.ndim != 2 or arr.shape[1] not in (7, BOX_DIM):
            raise ValueError(f"Boxes3D expects an (N, 7) or (N, 9) array, got shape {arr.shape}")
        if arr.shape[1] == 7:
            arr = np.concatenate([arr, np.full((arr.shape[0], 2), np.nan)], axis=1)
        self.data = np.ascontiguousarray(arr)

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index) -> "Boxes3D":
        if isinstance(index, (int, np.integer)):
            index = [index]
        return Boxes3D(self.data[index])

    def __repr__(self) -> str:
        return f"Boxes3D(n={len(self)})"

    @property
    def center(self) -> np.ndarray:
        """(N, 3) box centres."""
        return self.data[:, 0:3]

    @property
    def bottom_center(self) -> np.ndarray:
        """(N, 3) centres of the bottom faces."""
        out = self.data[:, 0:3].copy()
        out[:, 2] -= self.data[:, 5] / 2
        return out

    @property
    def dims(self) -> np.ndarray:
        """(N, 3) ``l w h``."""
        return self.data[:, 3:6]

    @property
    def yaw(self) -> np.ndarray:
        """(N,) heading about +z."""
        return self.data[:, 6]

    @property
    def velocity(self) -> np.ndarray:
        """(N, 2) ``vx vy`` (NaN when unknown)."""
        return self.data[:, 7:9]

    @staticmethod
    def cat(boxes: list["Boxes3D"]) -> "Boxes3D":
        if not boxes:
            return Boxes3D()
        return Boxes3D(np.concatenate([b.data for b in boxes], axis=0))

    def copy(self) -> "Boxes3D":
        return Boxes3D(self.data.copy())

    # ----------------------------------------------------------------- geometry
    def corners(self) -> np.ndarray:
        """(N, 8, 3) corners; order: bottom face (front-left, rear-left, rear-right,
        front-right), then the top face in the same order."""
        local = _UNIT_CORNERS[None] * self.dims[:, None, :]
        c, s = np.cos(self.yaw)[:, None], np.sin(self.yaw)[:, None]
        x = local[..., 0] * c - local[..., 1] * s
        y = local[..., 0] * s + local[..., 1] * c
        return np.stack([x, y, local[..., 2]], axis=-1) + self.center[:, None, :]

    def bev_corners(self) -> np.ndarray:
        """(N, 4, 2) bottom-face corners in xy, counter-clockwise."""
        return self.corners()[:, :4, :2]

    def points_in_boxes(self, points: np.ndarray) -> np.ndarray:
        """(M, N) bool: point m lies inside (or on) box n. ``points`` (M, >=3)."""
        p = np.asarray(points, dtype=np.float64)[:, None, :3] - self.center[None]
        c, s = np.cos(self.yaw)[None], np.sin(self.yaw)[None]
        lx = p[..., 0] * c + p[..., 1] * s
        ly = -p[..., 0] * s + p[..., 1] * c
        half = self.dims[None] / 2
        return (np.abs(lx) <= half[..., 0]) & (np.abs(ly) <= half[..., 1]) & (np.abs(p[..., 2]) <= half[..., 2])

    # ----------------------------------------------------------------- rigid transforms
    def transform(self, matrix: np.ndarray) -> "Boxes3D":
        """Apply a 4x4 rigid transform whose rotation is (close to) a rotation about z.

        Centres are transformed exactly; the heading is the angle of the transformed heading
        vector in xy; velocities are rotated. Roll/pitch of ``matrix`` are ignored for the box
        orientation, as boxes in kd3d carry yaw only.
        """
        m = np.asarray(matrix, dtype=np.float64)
        out = self.data.copy()
        out[:, 0:3] = transform_points(self.center, m)
        heading = np.stack([np.cos(self.yaw), np.sin(self.yaw), np.zeros(len(self))], axis=1) @ m[:3, :3].T
        out[:, 6] = np.arctan2(heading[:, 1], heading[:, 0])
        vel = np.concatenate([self.velocity, np.zeros((len(self), 1))], axis=1) @ m[:3, :3].T
        out[:, 7:9] = vel[:, :2]
        return Boxes3D(out)

    def rotate(self, angle: float) -> "Boxes3D":
        """Rotate boxes (centres, headings, velocities) by ``angle`` about the frame's z axis."""
        m = np.eye(4)
        m[:3, :3] = rotation_z(angle)
        return self.transform(m)

    def translate(self, offset) -> "Boxes3D":
        out = self.data.copy()
        out[:, 0:3] += np.asarray(offset, dtype=np.float64)
        return Boxes3D(out)

    def scale(self, factor: float) -> "Boxes3D":
        """Scale positions, sizes and velocities by ``factor`` about the origin."""
        out = self.data.copy()
        out[:, [0, 1, 2, 3, 4, 5, 7, 8]] *= factor
        return Boxes3D(out)

    def flip(self, axis: str) -> "Boxes3D":
        """Mirror the scene: ``axis='x'`` negates y (flip across the x axis), ``'y'`` negates x."""
        out = self.data.copy()
        if axis == "x":
            out[:, 1] *= -1
            out[:, 6] *= -1
            out[:, 8] *= -1
        elif axis == "y":
            out[:, 0] *= -1
            out[:, 6] = np.pi - out[:, 6]
            out[:, 7] *= -1
        else:
            raise ValueError(f"flip axis must be 'x' or 'y', got {axis!r}")
        out[:, 6] = limit_period(out[:, 6])
        return Boxes3D(out)

    def in_range(self, xy_range) -> np.ndarray:
        """(N,) bool: centre inside ``[xmin, ymin, xmax, ymax]`` (min inclusive, max exclusive)."""
        xmin, ymin, xmax, ymax = xy_range
        c = self.center
        return (c[:, 0] >= xmin) & (c[:, 0] < xmax) & (c[:, 1] >= ymin) & (c[:, 1] < ymax)

    # ----------------------------------------------------------------- nuScenes
    def to_nuscenes(self, lidar2ego: np.ndarray, ego2global: np.ndarray) -> list[dict]:
        """Boxes as nuScenes global-frame records.

        Returns a list of dicts with ``translation`` (3), ``size`` (w, l, h),
        ``rotation`` (quaternion w x y z, the full LiDAR->global rotation composed with the
        box yaw, as the devkit's ``Box.rotate`` would produce) and ``velocity`` (vx, vy).
        """
        from pyquaternion import Quaternion

        m = np.asarray(ego2global, dtype=np.float64) @ np.asarray(lidar2ego, dtype=np.float64)
        centers = transform_points(self.center, m)
        vel = np.concatenate([self.velocity, np.zeros((len(self), 1))], axis=1) @ m[:3, :3].T
        records = []
        for i in range(len(self)):
            rot = m[:3, :3] @ rotation_z(self.yaw[i])
            q = Quaternion(matrix=_orthonormalize(rot))
            l, w, h = self.dims[i]
            records.append(
                {
                    "translation": [float(v) for v in centers[i]],
                    "size": [float(w), float(l), float(h)],
                    "rotation": [float(v) for v in q.elements],
                    "velocity": [float(vel[i, 0]), float(vel[i, 1])],
                }
            )
        return records

    @classmethod
    def from_nuscenes(
        cls,
        translation,
        size,
        rotation,
        velocity,
        lidar2ego: np.ndarray,
        ego2global: np.ndarray,
    ) -> "Boxes3D":
        """Inverse of :meth:`to_nuscenes`: global-frame records -> LiDAR-frame boxes.

        ``translation`` (N, 3), ``size`` (N, 3) as w l h, ``rotation`` (N, 4) quaternions
        w x y z, ``velocity`` (N, 2) or (N, 3) global (NaN allowed).
        """
        from pyquaternion import Quaternion

        translation = np.asarray(translation, dtype=np.float64).reshape(-1, 3)
        n = translation.shape[0]
        size = np.asarray(size, dtype=np.float64).reshape(n, 3)
        rotation = np.asarray(rotation, dtype=np.float64).reshape(n, 4)
        velocity = np.asarray(velocity, dtype=np.float64).reshape(n, -1)[:, :2]
        g2l = np.linalg.inv(np.asarray(ego2global, dtype=np.float64) @ np.asarray(lidar2ego, dtype=np.float64))
        centers = transform_points(translation, g2l)
        yaws = np.empty(n)
        for i in range(n):
            rot = g2l[:3, :3] @ Quaternion(rotation[i]).rotation_matrix
            yaws[i] = np.arctan2(rot[1, 0], rot[0, 0])
        vel = np.concatenate([velocity, np.zeros((n, 1))], axis=1) @ g2l[:3, :3].T
        data = np.concatenate(
            [centers, size[:, [1, 0, 2]], yaws[:, None], vel[:, :2]], axis=1
        ) if n else np.zeros((0, BOX_DIM))
        return cls(data)

    # ----------------------------------------------------------------- KITTI
    def to_kitti(self, calib, image_shape: tuple[int, int] | None = None) -> "KittiBoxes":
        """Boxes in KITTI's rectified camera frame (see :class:`KittiBoxes`).

        ``calib``: :class:`~kd3d.structures.calib.KittiCalib`. ``image_shape`` (H, W) clips the
        2D boxes to the image when given.
        """
        velo2rect = calib.velo_to_rect
        location = transform_points(self.bottom_center, velo2rect)
        heading = np.stack([np.cos(self.yaw), np.sin(self.yaw), np.zeros(len(self))], axis=1) @ velo2rect[:3, :3].T
        ry = limit_period(np.arctan2(-heading[:, 2], heading[:, 0]))
        alpha = limit_period(ry - np.arctan2(location[:, 0], location[:, 2]))
        dims_hwl = self.dims[:, [2, 1, 0]].copy()
        corners = transform_points(self.corners().reshape(-1, 3), velo2rect).reshape(-1, 8, 3)
        bbox = calib.project_rect_to_bbox(corners, image_shape)
        return KittiBoxes(location=location, dimensions=dims_hwl, rotation_y=ry, alpha=alpha, bbox=bbox)

    @classmethod
    def from_kitti(cls, location, dimensions, rotation_y, calib) -> "Boxes3D":
        """KITTI label fields -> LiDAR-frame boxes. ``location`` (N, 3) bottom centre in the
        rectified camera frame, ``dimensions`` (N, 3) as h w l, ``rotation_y`` (N,)."""
        location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
        dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
        ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1)
        rect2velo = np.linalg.inv(calib.velo_to_rect)
        bottom = transform_points(location, rect2velo)
        heading_cam = np.stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)], axis=1)
        heading = heading_cam @ rect2velo[:3, :3].T
        yaw = np.arctan2(heading[:, 1], heading[:, 0])
        l, w, h = dims[:, 2], dims[:, 1], dims[:, 0]
        center = bottom.copy()
        center[:, 2] += h / 2
        return cls(np.stack([center[:, 0], center[:, 1], center[:, 2], l, w, h, yaw], axis=1))


@dataclass
class KittiBoxes:
    """Boxes as KITTI label fields, rectified camera frame (x right, y down, z forward).

    location (N, 3) bottom centre; dimensions (N, 3) h w l; rotation_y (N,); alpha (N,);
    bbox (N, 4) image box x1 y1 x2 y2 from the projected corners.
    """

    location: np.ndarray
    dimensions: np.ndarray
    rotation_y: np.ndarray
    alpha: np.ndarray
    bbox: np.ndarray

    def __len__(self) -> int:
        return self.location.shape[0]


def _orthonormalize(rot: np.ndarray) -> np.ndarray:
    """Nearest rotation matrix (guards pyquaternion against float drift)."""
    u, _, vt = np.linalg.svd(rot)
    r = u @ vt
    if np.linalg.det(r) < 0:
        u[:, -1] *= -1
        r = u @ vt
    return r
