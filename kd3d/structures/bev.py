"""``BEVGrid``: the bird's-eye-view raster shared by LiDAR teachers and camera students."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BEVGrid:
    """An axis-aligned BEV raster in the LiDAR frame.

    A BEV map is a tensor (B, C, H, W) with ``H = ny`` rows along y and ``W = nx`` columns
    along x: cell ``(row i, col j)`` covers ``x in [xmin + j dx, xmin + (j+1) dx)`` and
    ``y in [ymin + i dy, ymin + (i+1) dy)``.

    Choose the camera BEV step equal to (LiDAR voxel size x head stride) so teacher and
    student maps coincide; otherwise resample explicitly (``kd3d.distill.adapters``).
    """

    xmin: float
    ymin: float
    xmax: float
    ymax: float
    dx: float
    dy: float

    def __post_init__(self):
        if not (self.xmax > self.xmin and self.ymax > self.ymin):
            raise ValueError(f"BEVGrid: empty range x[{self.xmin}, {self.xmax}) y[{self.ymin}, {self.ymax})")
        if self.dx <= 0 or self.dy <= 0:
            raise ValueError(f"BEVGrid: cell size must be positive, got dx={self.dx}, dy={self.dy}")
        for name, span, step in (("x", self.xmax - self.xmin, self.dx), ("y", self.ymax - self.ymin, self.dy)):
            n = span / step
            if abs(n - round(n)) > 1e-6:
                raise ValueError(f"BEVGrid: {name} range {span} is not a multiple of the cell size {step}")

    @classmethod
    def from_range(cls, point_range, cell_size) -> "BEVGrid":
        """From ``[xmin, ymin, zmin, xmax, ymax, zmax]`` (or 4 values) and ``(dx, dy)``."""
        r = list(point_range)
        if len(r) == 6:
            r = [r[0], r[1], r[3], r[4]]
        dx, dy = (cell_size, cell_size) if np.isscalar(cell_size) else tuple(cell_size)[:2]
        return cls(float(r[0]), float(r[1]), float(r[2]), float(r[3]), float(dx), float(dy))

    @property
    def nx(self) -> int:
        return int(round((self.xmax - self.xmin) / self.dx))

    @property
    def ny(self) -> int:
        return int(round((self.ymax - self.ymin) / self.dy))

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) = (ny, nx)."""
        return self.ny, self.nx

    def scaled(self, stride: int | float) -> "BEVGrid":
        """The same range with cells ``stride`` times larger (a downsampled map)."""
        return BEVGrid(self.xmin, self.ymin, self.xmax, self.ymax, self.dx * stride, self.dy * stride)

    def xy_to_cell(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) metric xy -> (N, 2) continuous ``(col, row)``; cell centres are at ``k + 0.5``."""
        xy = np.asarray(xy, dtype=np.float64)
        return np.stack([(xy[:, 0] - self.xmin) / self.dx, (xy[:, 1] - self.ymin) / self.dy], axis=1)

    def cell_to_xy(self, colrow: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`xy_to_cell`."""
        colrow = np.asarray(colrow, dtype=np.float64)
        return np.stack([colrow[:, 0] * self.dx + self.xmin, colrow[:, 1] * self.dy + self.ymin], axis=1)

    def cell_centers(self) -> np.ndarray:
        """(H, W, 2) metric xy of every cell centre."""
        xs = self.xmin + (np.arange(self.nx) + 0.5) * self.dx
        ys = self.ymin + (np.arange(self.ny) + 0.5) * self.dy
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx, gy], axis=-1)
