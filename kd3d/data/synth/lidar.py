"""Spinning multi-beam LiDAR simulated by ray casting a :class:`~kd3d.data.synth.scene.SynthScene`.

Each sweep is an instantaneous snapshot: the motion of the ego during the ~50 ms rotation is
ignored (every point of a sweep is measured from the pose at the sweep's timestamp). Only the
rays whose azimuth/elevation window can reach a primitive are tested against it, so a sweep of
32 x 1084 rays costs a few tens of milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.data.synth import catalog
from kd3d.data.synth.raycast import HitBuffer, box_corners
from kd3d.data.synth.scene import SynthScene


@dataclass(frozen=True)
class LidarModel:
    """Beam layout. Defaults follow the nuScenes Velodyne HDL-32E (32 beams from -30.67 to
    +10.67 deg, 20 Hz, about 1084 firings per revolution, ~70 m useful range)."""

    n_beams: int = 32
    elev_min_deg: float = -30.67
    elev_max_deg: float = 10.67
    n_azimuth: int = 1084
    max_range: float = 70.0
    range_noise: float = 0.01
    dropout: float = 0.01
    intensity_scale: float = 1.0  # 1 for nuScenes (0..255), 1/255 for KITTI reflectance (0..1)

    def elevations(self) -> np.ndarray:
        return np.deg2rad(np.linspace(self.elev_min_deg, self.elev_max_deg, self.n_beams))


NUSCENES_LIDAR = LidarModel()
KITTI_LIDAR = LidarModel(n_beams=64, elev_min_deg=-24.9, elev_max_deg=2.0, n_azimuth=1200,
                         max_range=80.0, intensity_scale=1.0 / 255.0)


def cast_sweep(scene: SynthScene, t: float, lidar2global: np.ndarray, model: LidarModel,
               rng: np.random.Generator, with_ego: bool = True) -> dict:
    """Simulate one sweep at time ``t`` from the sensor pose ``lidar2global`` (4x4).

    Returns ``points`` (N, 5) float32 sensor frame ``x y z intensity ring``, ``seg`` (N,) uint8
    lidarseg index (32 classes), ``inst`` (N,) int64 object index (-1 background, -2 ego).
    """
    origin = lidar2global[:3, 3]
    rot = lidar2global[:3, :3]
    elev = model.elevations()
    az0 = rng.uniform(0, 2 * np.pi / model.n_azimuth)
    az = az0 + np.arange(model.n_azimuth) * (2 * np.pi / model.n_azimuth)
    ce = np.cos(elev)[:, None]
    d_sensor = np.stack([ce * np.cos(az)[None], ce * np.sin(az)[None],
                         np.broadcast_to(np.sin(elev)[:, None], (elev.size, az.size))], axis=-1).reshape(-1, 3)
    buf = HitBuffer(origin, d_sensor @ rot.T, model.max_range)
    prims = scene.prims(t, center=origin, radius=model.max_range, with_ego=with_ego)

    g2s = np.linalg.inv(lidar2global)
    corners = box_corners(prims.boxes) @ g2s[:3, :3].T + g2s[:3, 3]
    centre = prims.boxes[:, :3] @ g2s[:3, :3].T + g2s[:3, 3]
    half_diag = 0.5 * np.hypot(prims.boxes[:, 3], prims.boxes[:, 4])
    dist = np.hypot(centre[:, 0], centre[:, 1])
    daz = 2 * np.pi / model.n_azimuth
    for i in range(len(prims.boxes)):
        rho_min = max(dist[i] - half_diag[i], 0.0)
        rho_max = dist[i] + half_diag[i]
        zb, zt = corners[i, :, 2].min(), corners[i, :, 2].max()
        hi = np.arctan2(zt, rho_min if zt > 0 else rho_max)
        lo = np.arctan2(zb, rho_min if zb < 0 else rho_max)
        beams = np.nonzero((elev >= lo - 1e-3) & (elev <= hi + 1e-3))[0]
        if beams.size == 0:
            continue
        if rho_min <= 0.0:
            cols = np.arange(model.n_azimuth)
        else:
            ca = np.arctan2(centre[i, 1], centre[i, 0])
            rel = np.arctan2(corners[i, :, 1], corners[i, :, 0]) - ca
            rel = (rel + np.pi) % (2 * np.pi) - np.pi
            j0 = int(np.floor((ca + rel.min() - az0) / daz))
            j1 = int(np.ceil((ca + rel.max() - az0) / daz))
            cols = np.arange(j0, j1 + 1) % model.n_azimuth
        rays = (beams[:, None] * model.n_azimuth + cols[None, :]).reshape(-1)
        buf.add_box(i, prims.boxes[i], rays)
    ground = buf.add_ground()

    valid = np.isfinite(buf.t)
    valid &= rng.random(valid.shape) >= model.dropout
    idx = np.nonzero(valid)[0]
    pts_global = buf.points()[idx]
    seg = np.empty(idx.size, dtype=np.uint8)
    inst = np.full(idx.size, -1, dtype=np.int64)
    refl = np.empty(idx.size)
    on_ground = ground[idx]
    g_seg, _, _, marking = scene.road.surface(pts_global[on_ground, :2])
    seg[on_ground] = g_seg
    refl[on_ground] = np.where(marking, catalog.MARKING_REFLECTIVITY, catalog.SEG_REFLECTIVITY[g_seg])
    hit_prim = buf.prim[idx[~on_ground]]
    seg[~on_ground] = prims.segs[hit_prim]
    inst[~on_ground] = prims.inst[hit_prim]
    refl[~on_ground] = catalog.SEG_REFLECTIVITY[prims.segs[hit_prim]]
    cos_inc = np.abs(np.sum(buf.normal[idx] * buf.dirs[idx], axis=1))
    intensity = refl * (0.35 + 0.65 * cos_inc) * rng.uniform(0.85, 1.15, idx.size)
    intensity = np.clip(np.round(intensity), 0, 255) * model.intensity_scale
    rng_t = buf.t[idx] + rng.normal(0.0, model.range_noise, idx.size)
    xyz = d_sensor[idx] * rng_t[:, None]
    ring = (idx // model.n_azimuth).astype(np.float64)
    points = np.concatenate([xyz, intensity[:, None], ring[:, None]], axis=1).astype(np.float32)
    return {"points": points, "seg": seg, "inst": inst}
