"""The procedural world model: lanes, motion, no interpenetrating objects, sensors."""
from __future__ import annotations

import numpy as np
import pytest

from kd3d.data.synth.scene import SynthScene
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_DET_CLASSES

shapely = pytest.importorskip("shapely")


def _overlaps(scene: SynthScene, t: float) -> list[tuple[str, str, float]]:
    """Pairs of solid boxes (objects, environment, ego) that intersect in 3D."""
    from shapely.geometry import Polygon
    from shapely.strtree import STRtree

    keep = [i for i, o in enumerate(scene.objects) if o.category != "static_object.bicycle_rack"]
    boxes = np.concatenate([scene.object_boxes(t)[keep, :7], scene.env.boxes, scene.ego_box(t)[None]])
    names = [scene.objects[i].category for i in keep] + ["env"] * len(scene.env.boxes) + ["ego"]
    polys = [Polygon(c) for c in Boxes3D(boxes).bev_corners()]
    tree = STRtree(polys)
    bad = []
    for i, p in enumerate(polys):
        for j in tree.query(p):
            if j <= i or names[i] == names[j] == "env":
                continue
            lo = max(boxes[i, 2] - boxes[i, 5] / 2, boxes[j, 2] - boxes[j, 5] / 2)
            hi = min(boxes[i, 2] + boxes[i, 5] / 2, boxes[j, 2] + boxes[j, 5] / 2)
            area = p.intersection(polys[j]).area
            if area > 1e-3 and hi > lo:
                bad.append((names[i], names[j], area))
    return bad


@pytest.mark.parametrize("seed", [0, 5])
def test_no_interpenetration(seed):
    scene = SynthScene(seed, seed % 3, duration=10.0)
    for t in (-0.45, 0.0, 5.0, 10.0):
        assert _overlaps(scene, t) == []


def test_scene_content_and_motion():
    scene = SynthScene(1, 0, duration=6.0)
    from kd3d.structures.classes import NUSC_CATEGORY_TO_DET

    classes = {NUSC_CATEGORY_TO_DET.get(o.category) for o in scene.objects}
    assert len(classes & set(NUSC_DET_CLASSES)) >= 7
    b0, bm, bp = scene.object_boxes(2.0), scene.object_boxes(1.95), scene.object_boxes(2.05)
    # velocities are the derivative of the positions (central difference)
    assert np.allclose((bp[:, :2] - bm[:, :2]) / 0.1, b0[:, 7:9], atol=1e-3)
    for o, v in zip(scene.objects, np.linalg.norm(b0[:, 7:9], axis=1)):
        if o.attribute in ("vehicle.moving", "pedestrian.moving"):
            assert v > 0.2
        if o.attribute in ("vehicle.parked", "vehicle.stopped", "pedestrian.standing", "cycle.without_rider"):
            assert v == 0.0
    # the ego drives along its lane at the scene speed, objects rest on the ground
    e0, e1 = scene.ego_pose(0.0), scene.ego_pose(1.0)
    path_speed = scene.ego_speed * (1 - scene.road.curvature * scene.ego_d)
    assert np.isclose(np.linalg.norm(e1[:2, 3] - e0[:2, 3]), path_speed, rtol=1e-4)
    assert np.allclose(b0[:, 2] - b0[:, 5] / 2, 0.0)
    # same seed -> same world, other seed -> another world
    assert np.array_equal(SynthScene(1, 0, duration=6.0).object_boxes(1.0), scene.object_boxes(1.0))
    assert len(SynthScene(2, 0, duration=6.0).objects) != len(scene.objects) or not np.array_equal(
        SynthScene(2, 0, duration=6.0).object_boxes(1.0), scene.object_boxes(1.0))
