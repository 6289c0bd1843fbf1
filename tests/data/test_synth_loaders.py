"""kd3d's own loaders read the synthetic datasets, and what they return matches the simulation."""
from __future__ import annotations

import numpy as np
from synth_params import SYNTH_KITTI, SYNTH_NUSC

from kd3d.data.kitti import KittiDataset
from kd3d.data.nuscenes import NuScenesDataset
from kd3d.data.synth.kitti_writer import kitti_frame
from kd3d.data.synth.nuscenes_writer import KEY_INTERVAL, synth_scene
from kd3d.data.synth.rig import lidar_to_ego
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_CATEGORY_TO_DET


def _match(truth: Boxes3D, boxes: Boxes3D) -> np.ndarray:
    d = np.linalg.norm(truth.center[:, None] - boxes.center[None], axis=2)
    return np.argmin(d, axis=0)


def test_nuscenes_loader_boxes_and_sweeps(synth_nuscenes):
    ds = NuScenesDataset(synth_nuscenes["dataroot"], synth_nuscenes["version"], "mini_val",
                         sweeps=SYNTH_NUSC["sweeps"] + 1, load_images=True)
    assert len(ds) == SYNTH_NUSC["samples_per_scene"]
    k = 1
    s = ds[k]
    scene = synth_scene(SYNTH_NUSC["seed"], 1, SYNTH_NUSC["samples_per_scene"])  # mini_val is scene 1
    t = k * KEY_INTERVAL
    lidar2global = scene.ego_pose(t) @ lidar_to_ego()
    det = np.array([NUSC_CATEGORY_TO_DET.get(o.category) is not None for o in scene.objects])
    truth = Boxes3D(scene.object_boxes(t)[det]).transform(np.linalg.inv(lidar2global))
    j = _match(truth, s.gt_boxes)
    assert np.allclose(truth.data[j, :7], s.gt_boxes.data[:, :7], atol=1e-6)
    assert s.images.shape == (6, SYNTH_NUSC["image_size"][1], SYNTH_NUSC["image_size"][0], 3)
    # multi-sweep accumulation: static world points line up, a moving object's points smear
    # along its track (each sweep's points sit where the object was at that sweep's time)
    dts = sorted(set(np.round(s.points[:, 4], 3)) - {0.0})
    assert len(dts) == SYNTH_NUSC["sweeps"]
    moving = np.nonzero(np.linalg.norm(truth.velocity[j], axis=1) > 2.0)[0]
    moving = [m for m in moving if s.gt_num_points[m] > 20]
    assert moving, "the fixture scene must hold a moving object with LiDAR points"
    m = moving[0]
    for dt in dts:
        pts = s.points[np.isclose(s.points[:, 4], dt, atol=1e-3)]
        box_then = s.gt_boxes[int(m)].data.copy()
        box_then[0, :2] -= truth.velocity[j[m]] * dt
        at_then = Boxes3D(box_then).points_in_boxes(pts)[:, 0].sum()
        assert at_then > 0


def test_kitti_loader(synth_kitti):
    ds = KittiDataset(synth_kitti["root"], "train")
    assert len(ds) == synth_kitti["train"]
    found = 0
    for i in range(len(ds)):
        s = ds[i]
        scene, t, velo2global = kitti_frame(SYNTH_KITTI["seed"], int(s.token))
        truth = Boxes3D(scene.object_boxes(t)).transform(np.linalg.inv(velo2global))
        if len(s.gt_boxes):
            j = _match(truth, s.gt_boxes)
            assert np.allclose(truth.center[j], s.gt_boxes.center, atol=0.02)
            found += len(j)
        assert s.images.shape[1:3] == (SYNTH_KITTI["image_size"][1], SYNTH_KITTI["image_size"][0])
    assert found > 3
