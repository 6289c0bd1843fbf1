"""Procedural street scenes: the single world model that the LiDAR and the cameras observe.

A :class:`SynthScene` is fully determined by ``(seed, index, duration)``. Frames: *global*
(x/y horizontal, z up, ground z = 0), the ego frame (origin on the ground below the rear axle,
x forward, y left, z up) and per-object box frames. Time ``t`` is in seconds from the first
key frame (LiDAR sweeps before it have negative ``t``).

Everything in the world is an oriented box ("primitive") with a lidarseg class and a colour:
annotated objects (:class:`SceneObject`, one annotation box drawn with one or more primitives)
and static environment (buildings, trees, poles). Moving objects follow lanes at constant
speed, so velocities are exact and consistent across frames.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kd3d.data.synth import catalog
from kd3d.data.synth.road import (
    BIKE_LANE, FURNITURE_D, LANE_WIDTH, PARKING_LANE, SIDEWALK, WALK_LANES_D, Road,
)
from kd3d.structures.classes import NUSC_CATEGORY_TO_DET

EGO_SIZE = (4.6, 1.9, 0.8)           # l w h of the ego body seen by the roof LiDAR (bonnet height)
EGO_BOX_X = 1.4                      # ego box centre ahead of the ego origin (rear axle)
ANNOTATION_RADIUS = 80.0             # objects farther than this from the ego are not annotated

TEX_NONE, TEX_WINDOWS = 0, 1


@dataclass
class SceneObject:
    """One annotated object moving along the road at constant speed (``speed`` >= 0 m/s along
    +s, or -s when ``backwards``). ``yaw_offset`` turns the object relative to its lane."""

    category: str
    lwh: np.ndarray
    s0: float
    d: float
    speed: float = 0.0
    backwards: bool = False
    yaw_offset: float = 0.0
    attribute: str = ""
    prim_boxes: np.ndarray | None = None   # (P, 6) local cx cy cz l w h
    prim_colors: np.ndarray | None = None  # (P, 3)
    prim_segs: np.ndarray | None = None    # (P,)

    @property
    def det_class(self) -> str | None:
        return NUSC_CATEGORY_TO_DET.get(self.category)


@dataclass
class Prims:
    """World primitives at one instant. ``boxes`` (P, 7) ``x y z l w h yaw`` global,
    ``segs`` (P,) lidarseg index, ``colors`` (P, 3), ``inst`` (P,) object index or -1,
    ``tex`` (P,) texture code."""

    boxes: np.ndarray
    segs: np.ndarray
    colors: np.ndarray
    inst: np.ndarray
    tex: np.ndarray

    def select(self, mask) -> "Prims":
        return Prims(self.boxes[mask], self.segs[mask], self.colors[mask], self.inst[mask], self.tex[mask])

    @staticmethod
    def cat(items: list["Prims"]) -> "Prims":
        return Prims(*(np.concatenate([getattr(p, f) for p in items]) for f in ("boxes", "segs", "colors", "inst", "tex")))


class SynthScene:
    """A procedural street of about ``duration`` seconds of ego driving.

    ``ego_pose(t)`` -> 4x4 ego->global; ``object_boxes(t)`` -> (N, 9) global boxes
    ``x y z l w h yaw vx vy`` of all objects; ``prims(t, center, radius)`` -> :class:`Prims`.
    """

    def __init__(self, seed: int, index: int = 0, duration: float = 20.0):
        self.seed, self.index, self.duration = int(seed), int(index), float(duration)
        rng = np.random.default_rng([self.seed, self.index, 7919])
        self.rng_seed = int(rng.integers(2**31))
        curvature = 0.0 if rng.random() < 0.5 else rng.choice([-1, 1]) / rng.uniform(150, 400)
        self.road = Road(
            origin=(float(rng.uniform(200, 2000)), float(rng.uniform(200, 2000))),
            heading=float(rng.uniform(-np.pi, np.pi)),
            curvature=float(curvature),
            verge=float(rng.uniform(3, 8)),
        )
        self.ego_speed = 0.0 if rng.random() < 0.1 else float(rng.uniform(3, 12))
        self.ego_d = -LANE_WIDTH / 2
        self.ego_s0 = 0.0
        margin = ANNOTATION_RADIUS + 15
        self.s_range = (self.ego_s0 - margin, self.ego_s0 + self.ego_speed * duration + margin)
        self.objects: list[SceneObject] = []
        self._env: list[tuple] = []  # (s, d, l, w, h, z0, yaw_offset, seg, color, tex)
        self._populate(rng)
        self._finalise(rng)

    # ---------------------------------------------------------------- population
    def _add(self, rng, category, s, d, *, speed=0.0, backwards=False, yaw_offset=0.0,
             attribute="", rider=False, sitting=False, lwh=None):
        lwh = catalog.sample_size(category, rng) if lwh is None else np.asarray(lwh, dtype=np.float64)
        if sitting:
            lwh = np.array([0.8, 0.65, 1.2]) * rng.uniform(0.9, 1.1)
        if PARKING_LANE[0] <= abs(d) <= PARKING_LANE[1]:  # stay inside the 3 m parking lane
            lwh = np.array([lwh[0], min(lwh[1], 2.8), lwh[2]])
        boxes, colors, segs = catalog.make_prims(category, lwh, rider=rider, sitting=sitting, rng=rng)
        self.objects.append(SceneObject(category, lwh, float(s), float(d), float(speed), bool(backwards),
                                        float(yaw_offset), attribute, boxes, colors, segs))
        return lwh

    def _lane(self, rng, d, speed, backwards, pick, gap, s_lo=None, s_hi=None, keep_clear=None):
        """Fill a lane with objects from ``pick(rng) -> (category, kwargs)`` spaced by ``gap``."""
        span = abs(speed) * self.duration
        s_lo = self.s_range[0] - (span if not backwards else 0) if s_lo is None else s_lo
        s_hi = self.s_range[1] + (span if backwards else 0) if s_hi is None else s_hi
        s = s_lo + rng.uniform(0, gap[1])
        while s < s_hi:
            category, kwargs = pick(rng)
            lwh = catalog.sample_size(category, rng)
            centre = s + lwh[0] / 2
            if keep_clear is None or abs(centre - keep_clear[0]) > keep_clear[1] + lwh[0] / 2:
                self._add(rng, category, centre, d, speed=speed, backwards=backwards, lwh=lwh, **kwargs)
            s += lwh[0] + rng.uniform(*gap)
        return s

    def _populate(self, rng):
        vehicles = (["vehicle.car"] * 16 + ["vehicle.truck"] * 2
                    + ["vehicle.bus.rigid", "vehicle.trailer", "vehicle.construction", "vehicle.bus.bendy"])

        def moving_vehicle(speed):
            attr = "vehicle.moving" if speed > 0.2 else "vehicle.stopped"
            return lambda r: (vehicles[r.integers(len(vehicles))], {"attribute": attr})

        # driving lanes: the ego lane moves with the ego; the opposite lane at its own speed
        ego_clear = (self.ego_s0 + EGO_BOX_X, EGO_SIZE[0] / 2 + 5.0)
        self._lane(rng, self.ego_d, self.ego_speed, False, moving_vehicle(self.ego_speed), (10, 60),
                   keep_clear=ego_clear)
        v_opp = 0.0 if rng.random() < 0.1 else float(rng.uniform(4, 13))
        self._lane(rng, LANE_WIDTH / 2, v_opp, True, moving_vehicle(v_opp), (10, 60))
        for side in (-1, 1):
            back = side > 0
            # bike lane
            v_bike = float(rng.uniform(2, 6))
            self._lane(rng, side * sum(BIKE_LANE) / 2, v_bike, back,
                       lambda r: ("vehicle.bicycle" if r.random() < 0.65 else "vehicle.motorcycle",
                                  {"attribute": "cycle.with_rider", "rider": True}), (20, 100))
            self._parking_lane(rng, side)
            self._sidewalk(rng, side)
            self._environment(rng, side)

    def _parking_lane(self, rng, side):
        d = side * sum(PARKING_LANE) / 2
        s = self.s_range[0]
        parked = ["vehicle.car"] * 10 + ["vehicle.truck", "vehicle.trailer", "vehicle.construction"]
        while s < self.s_range[1]:
            kind = rng.choice(["parked", "zone", "empty"], p=[0.45, 0.15, 0.4])
            seg_len = float(rng.uniform(15, 50))
            if kind == "parked":
                s = self._lane(rng, d, 0.0, side > 0,
                               lambda r: (parked[r.integers(len(parked))], {"attribute": "vehicle.parked"}),
                               (1.0, 8.0), s_lo=s, s_hi=s + seg_len)
                continue
            elif kind == "zone":
                for sc in np.arange(s + 1, s + seg_len, rng.uniform(2.0, 4.0)):
                    self._add(rng, "movable_object.trafficcone", sc, side * (PARKING_LANE[0] + 0.4),
                              yaw_offset=rng.uniform(-np.pi, np.pi))
                for sb in np.arange(s + 2, s + seg_len - 2, 3.0):
                    self._add(rng, "movable_object.barrier", sb, side * (PARKING_LANE[1] - 0.5),
                              yaw_offset=rng.normal(0, 0.05))
                if rng.random() < 0.6:
                    self._add(rng, "human.pedestrian.construction_worker", s + seg_len / 2 + 5,
                              side * (PARKING_LANE[0] + 1.4), attribute="pedestrian.standing",
                              yaw_offset=rng.uniform(-np.pi, np.pi))
                if rng.random() < 0.5:
                    lwh = self._add(rng, "vehicle.construction", 0.0, side * sum(PARKING_LANE) / 2,
                                    attribute="vehicle.parked", backwards=side > 0)
                    self.objects[-1].s0 = s + seg_len + 1 + lwh[0] / 2
                    seg_len += lwh[0] + 2
            s += seg_len

    def _sidewalk(self, rng, side):
        peds = (["human.pedestrian.adult"] * 20 + ["human.pedestrian.child"] * 2
                + ["human.pedestrian.construction_worker", "human.pedestrian.police_officer"])
        for d in WALK_LANES_D:
            v = float(rng.uniform(0.8, 1.7))
            self._lane(rng, side * d, v, bool(rng.random() < 0.5),
                       lambda r: (peds[r.integers(len(peds))], {"attribute": "pedestrian.moving"}), (6, 60))
        s = self.s_range[0] + rng.uniform(0, 10)
        while s < self.s_range[1]:
            kind = rng.choice(["rack", "sitting", "standing", "bin", "pole"], p=[0.15, 0.15, 0.25, 0.15, 0.3])
            d = side * FURNITURE_D
            if kind == "rack":
                rack = self._add(rng, "static_object.bicycle_rack", s, d + side * 0.05,
                                 lwh=(rng.uniform(4, 6), 1.9, 1.2), backwards=side > 0)
                for sb in np.arange(s - rack[0] / 2 + 0.5, s + rack[0] / 2 - 0.4, 0.9):
                    if rng.random() < 0.7:
                        self._add(rng, "vehicle.bicycle", sb, d, yaw_offset=np.pi / 2 + rng.normal(0, 0.05),
                                  attribute="cycle.without_rider", lwh=(1.7, 0.55, 1.2))
                s += rack[0]
            elif kind in ("sitting", "standing"):
                self._add(rng, "human.pedestrian.adult", s, d, sitting=kind == "sitting",
                          attribute="pedestrian.sitting_lying_down" if kind == "sitting" else "pedestrian.standing",
                          yaw_offset=rng.uniform(-np.pi, np.pi))
            elif kind == "bin":
                self._add(rng, "movable_object.pushable_pullable", s, d, yaw_offset=rng.normal(0, 0.1))
            else:
                self._env.append((s, side * (SIDEWALK[0] + 0.3), 0.25, 0.25, 6.0, 0.0, 0.0,
                                  catalog.SEG["static.manmade"], np.array([0.5, 0.5, 0.52]), TEX_NONE))
            s += rng.uniform(8, 30)

    def _environment(self, rng, side):
        verge = self.road.verge
        s = self.s_range[0]
        while s < self.s_range[1]:  # trees on the verge
            if rng.random() < 0.7:
                ht = rng.uniform(4, 9)
                cw = rng.uniform(1.5, min(3.5, verge))
                d = side * (SIDEWALK[1] + verge / 2)
                trunk = (0.35, 0.25, 0.15)
                self._env.append((s, d, 0.35, 0.35, max(2.2, 0.4 * ht), 0.0, 0.0, catalog.SEG["static.vegetation"],
                                  np.array(trunk), TEX_NONE))
                z0 = max(2.2, 0.4 * ht)
                self._env.append((s, d, cw, cw, ht - z0, z0, rng.uniform(0, np.pi / 2),
                                  catalog.SEG["static.vegetation"],
                                  np.asarray(catalog.COLORS["static.vegetation"]) * rng.uniform(0.7, 1.2), TEX_NONE))
            s += rng.uniform(6, 16)
        s = self.s_range[0] - 20
        d0 = SIDEWALK[1] + verge
        while s < self.s_range[1] + 20:  # buildings
            length, depth, height = rng.uniform(8, 30), rng.uniform(8, 15), rng.uniform(4, 25)
            color = np.clip(np.asarray(catalog.COLORS["static.manmade"]) * rng.uniform(0.6, 1.3, 3), 0, 1)
            self._env.append((s + length / 2, side * (d0 + depth / 2), length, depth, height, 0.0, 0.0,
                              catalog.SEG["static.manmade"], color, TEX_WINDOWS))
            if rng.random() < 0.25:  # an object hidden behind the building row
                self._add(rng, "vehicle.car", s + length / 2, side * (d0 + 18), attribute="vehicle.parked",
                          backwards=side > 0)
            s += length + rng.uniform(0, 12)

    def _finalise(self, rng):
        env = self._env
        s = np.array([e[0] for e in env])
        d = np.array([e[1] for e in env])
        xy, yaw = self.road.pose(s, d)
        lwh = np.array([e[2:5] for e in env])
        z = np.array([e[5] for e in env]) + lwh[:, 2] / 2
        yaw = yaw + np.array([e[6] for e in env])
        self.env = Prims(
            boxes=np.concatenate([xy, z[:, None], lwh, yaw[:, None]], axis=1),
            segs=np.array([e[7] for e in env], dtype=np.int64),
            colors=np.array([e[8] for e in env], dtype=np.float64),
            inst=np.full(len(env), -1, dtype=np.int64),
            tex=np.array([e[9] for e in env], dtype=np.int64),
        )
        del self._env

    # ---------------------------------------------------------------- queries
    def ego_pose(self, t: float) -> np.ndarray:
        """4x4 ego -> global at time ``t`` (ego origin on the ground, heading along the lane)."""
        s = self.ego_s0 + self.ego_speed * t
        xy, yaw = self.road.pose(s, self.ego_d)
        m = np.eye(4)
        c, sn = np.cos(yaw), np.sin(yaw)
        m[:2, :2] = [[c, -sn], [sn, c]]
        m[:2, 3] = xy
        return m

    def ego_box(self, t: float) -> np.ndarray:
        """(7,) global box of the ego vehicle."""
        pose = self.ego_pose(t)
        centre = pose @ np.array([EGO_BOX_X, 0.0, EGO_SIZE[2] / 2, 1.0])
        yaw = np.arctan2(pose[1, 0], pose[0, 0])
        return np.array([*centre[:3], *EGO_SIZE, yaw])

    def object_boxes(self, t: float) -> np.ndarray:
        """(N, 9) global boxes ``x y z l w h yaw vx vy`` of all objects at time ``t``."""
        n = len(self.objects)
        if n == 0:
            return np.zeros((0, 9))
        sign = np.array([-1.0 if o.backwards else 1.0 for o in self.objects])
        speed = np.array([o.speed for o in self.objects])
        s = np.array([o.s0 for o in self.objects]) + sign * speed * t
        d = np.array([o.d for o in self.objects])
        lwh = np.array([o.lwh for o in self.objects])
        xy = self.road.to_global(s, d)
        heading = self.road.tangent_heading(s) + np.where(sign < 0, np.pi, 0.0)
        yaw = heading + np.array([o.yaw_offset for o in self.objects])
        # s advances at `speed`; at lateral offset d on an arc the path speed is (1 - curvature d) times that
        path_speed = speed * (1.0 - self.road.curvature * d)
        vel = path_speed[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
        yaw = (yaw + np.pi) % (2 * np.pi) - np.pi
        return np.concatenate([xy, lwh[:, 2:3] / 2, lwh, yaw[:, None], vel], axis=1)

    def prims(self, t: float, center=None, radius: float = np.inf, with_ego: bool = False) -> Prims:
        """All primitives at time ``t`` whose centre lies within ``radius`` (xy) of ``center``."""
        boxes = self.object_boxes(t)
        items = []
        for i, obj in enumerate(self.objects):
            b = boxes[i]
            c, s = np.cos(b[6]), np.sin(b[6])
            off = obj.prim_boxes[:, :3]
            world = np.stack([b[0] + c * off[:, 0] - s * off[:, 1], b[1] + s * off[:, 0] + c * off[:, 1],
                              b[2] + off[:, 2]], axis=1)
            items.append(np.concatenate([world, obj.prim_boxes[:, 3:6], np.full((len(off), 1), b[6])], axis=1))
        obj_inst = np.concatenate([np.full(len(o.prim_boxes), i) for i, o in enumerate(self.objects)]) \
            if self.objects else np.zeros(0, dtype=np.int64)
        parts = [self.env]
        if items:
            parts.append(Prims(np.concatenate(items), np.concatenate([o.prim_segs for o in self.objects]),
                               np.concatenate([o.prim_colors for o in self.objects]), obj_inst.astype(np.int64),
                               np.zeros(len(obj_inst), dtype=np.int64)))
        if with_ego:
            parts.append(Prims(self.ego_box(t)[None], np.array([catalog.SEG["vehicle.ego"]]),
                               np.array([catalog.COLORS["vehicle.ego"]]), np.array([-2]), np.array([TEX_NONE])))
        out = Prims.cat(parts)
        if center is not None and np.isfinite(radius):
            reach = radius + 0.5 * np.hypot(out.boxes[:, 3], out.boxes[:, 4])
            out = out.select(np.hypot(out.boxes[:, 0] - center[0], out.boxes[:, 1] - center[1]) < reach)
        return out
