"""The road of a synthetic scene: a straight or circular-arc street in the global frame.

Road coordinates ``(s, d)``: ``s`` metres along the centre line, ``d`` metres to its left
(global frame: x/y horizontal, z up, ground plane z = 0). The cross-section is symmetric:

====================  ==================  =====================================
``|d|`` range (m)     surface             use
====================  ==================  =====================================
0 .. 3.5              driveable surface   driving lane (right-hand traffic)
3.5 .. 5.0            driveable surface   bike lane
5.0 .. 8.0            driveable surface   parking lane / construction zones
8.0 .. 12.0           sidewalk            furniture strip, then walking lanes
12.0 .. 12 + verge    terrain             trees
beyond                terrain             buildings (manmade)
====================  ==================  =====================================

Traffic on the right side (``d < 0``) drives towards +s, on the left side towards -s.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.structures.classes import NUSC_LIDARSEG_CATEGORIES

LANE_WIDTH = 3.5
BIKE_LANE = (3.5, 5.0)
PARKING_LANE = (5.0, 8.0)
ROAD_HALF_WIDTH = 8.0
SIDEWALK = (8.0, 12.0)
FURNITURE_D = 8.8
WALK_LANES_D = (10.1, 10.9, 11.7)

SEG_ROAD = NUSC_LIDARSEG_CATEGORIES.index("flat.driveable_surface")
SEG_SIDEWALK = NUSC_LIDARSEG_CATEGORIES.index("flat.sidewalk")
SEG_TERRAIN = NUSC_LIDARSEG_CATEGORIES.index("flat.terrain")


def _wrap(a):
    return (a + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class Road:
    """A street centred on an arc (``curvature`` 1/m, 0 = straight) starting at ``origin``
    (2,) global xy with heading ``heading`` (rad, from +x towards +y)."""

    origin: tuple[float, float]
    heading: float
    curvature: float = 0.0
    verge: float = 5.0  # terrain strip width between sidewalk and buildings

    def _centre(self) -> np.ndarray:
        r = 1.0 / self.curvature
        n = np.array([-np.sin(self.heading), np.cos(self.heading)])
        return np.asarray(self.origin) + r * n

    def tangent_heading(self, s) -> np.ndarray:
        """Heading (rad) of the +s direction at arc length ``s``."""
        return _wrap(self.heading + self.curvature * np.asarray(s, dtype=np.float64))

    def to_global(self, s, d) -> np.ndarray:
        """Road coordinates -> (..., 2) global xy."""
        s = np.asarray(s, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        if self.curvature == 0.0:
            t = np.array([np.cos(self.heading), np.sin(self.heading)])
            n = np.array([-t[1], t[0]])
            return np.asarray(self.origin) + s[..., None] * t + d[..., None] * n
        r = 1.0 / self.curvature
        phi = self.heading + s / r
        rad = (r - d)[..., None]
        return self._centre() + rad * np.stack([np.sin(phi), -np.cos(phi)], axis=-1)

    def to_road(self, xy) -> tuple[np.ndarray, np.ndarray]:
        """(..., 2) global xy -> (s, d) road coordinates."""
        xy = np.asarray(xy, dtype=np.float64)
        if self.curvature == 0.0:
            v = xy - np.asarray(self.origin)
            c, s_ = np.cos(self.heading), np.sin(self.heading)
            return v[..., 0] * c + v[..., 1] * s_, -v[..., 0] * s_ + v[..., 1] * c
        r = 1.0 / self.curvature
        v = xy - self._centre()
        dist = np.hypot(v[..., 0], v[..., 1])
        if r > 0:
            phi = np.arctan2(v[..., 0], -v[..., 1])
            d = r - dist
        else:
            phi = np.arctan2(-v[..., 0], v[..., 1])
            d = r + dist
        return r * _wrap(phi - self.heading), d

    def pose(self, s, d, backwards=False) -> tuple[np.ndarray, np.ndarray]:
        """Global xy (..., 2) and heading (...) of a point at (s, d) facing +s (or -s)."""
        yaw = self.tangent_heading(s)
        if backwards:
            yaw = _wrap(yaw + np.pi)
        return self.to_global(s, d), yaw

    def surface(self, xy) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Ground material at global xy (..., 2).

        Returns ``seg`` (...) lidarseg index, ``s``, ``d`` and ``marking`` (...) bool for white
        road paint (dashed centre line, solid lane edges).
        """
        s, d = self.to_road(xy)
        ad = np.abs(d)
        seg = np.full(ad.shape, SEG_TERRAIN, dtype=np.uint8)
        seg[ad < SIDEWALK[1]] = SEG_SIDEWALK
        seg[ad < ROAD_HALF_WIDTH] = SEG_ROAD
        centre = (ad < 0.08) & (np.mod(s, 6.0) < 3.0)
        edge = np.abs(ad - BIKE_LANE[0]) < 0.06
        return seg, s, d, centre | edge
