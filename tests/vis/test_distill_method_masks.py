"""The methods' visualisation hooks (their METHODS descriptors) on hand-made boxes and maps, and
the model-free sample picture of kd3d.vis.distill_masks."""
from types import SimpleNamespace

import numpy as np
import torch

from kd3d.distill.methods import METHODS, MapContext
from kd3d.structures import BEVGrid, Boxes3D
from kd3d.vis.distill import GAP_PX
from kd3d.vis.distill_masks import lidar_bev_features, sample_distill_maps

GRID = BEVGrid(-20.0, -20.0, 20.0, 20.0, 0.5, 0.5)
BOXES = Boxes3D(np.array([[10.25, -4.75, 0, 4, 2, 1.5, 0.0], [-6.25, 8.25, 0, 1, 1, 1.8, 0.5]]))


def _maps(method, teacher=None, student=None, points=None, labels=None):
    batch = SimpleNamespace(gt_boxes=[torch.as_tensor(BOXES.data)], samples=None,
                            points=None if points is None else [torch.as_tensor(points)],
                            points_label=[None if labels is None else torch.as_tensor(labels)])
    ctx = MapContext(batch=batch, batch_index=0, grid=GRID,
                     teacher_feat=None if teacher is None else torch.as_tensor(teacher),
                     student_feat=None if student is None else torch.as_tensor(student))
    out = METHODS[method].maps(ctx)
    return {k: np.asarray(v) for k, v in out.maps.items()}, out


def test_bevdistill_gaussian_peaks_at_centres():
    maps, out = _maps("bevdistill")
    g = maps["bevdistill/dense weight"]
    np.testing.assert_allclose(np.asarray(out.keypoints), BOXES.center[:, :2])  # instance centres
    assert g.shape == GRID.shape
    for x, y in BOXES.center[:, :2]:
        col, row = np.floor(GRID.xy_to_cell(np.array([[x, y]]))[0]).astype(int)
        assert g[row, col] == 1.0
    assert g[0, 0] == 0.0


def test_distillbev_regions_and_attention():
    t = np.zeros((3, *GRID.shape))
    t[:, 5, 7] = 10.0
    m, _ = _maps("distillbev", t, t)
    reg = m["distillbev/regions (0 bg, 1 fg, 2 fp)"]
    col, row = np.floor(GRID.xy_to_cell(BOXES.center[:1, :2])[0]).astype(int)
    assert reg[row, col] == 1 and reg[0, 0] == 0
    # in-box cells: 4 m x 2 m car at 0.5 m cells -> 8 x 4 = 32 cells (centres inside)
    inside = BOXES[[0]].points_in_boxes(np.concatenate([GRID.cell_centers().reshape(-1, 2),
                                                        np.zeros((GRID.nx * GRID.ny, 1))], 1))[:, 0]
    assert int((reg.reshape(-1)[inside] == 1).sum()) == int(inside.sum()) > 0
    att = m["distillbev/attention"]
    assert np.unravel_index(att.argmax(), att.shape) == (5, 7)
    np.testing.assert_allclose(att.sum(), GRID.nx * GRID.ny, rtol=1e-5)  # H*W * softmax


def test_keypoints_cells_supervoxels():
    maps, out = _maps("unidistill")
    kp = np.asarray(out.keypoints)
    assert kp.shape == (18, 2)
    # each in-range keypoint is read with bilinear weights summing to 1: 18 in total
    np.testing.assert_allclose(maps["unidistill/keypoint reads"].sum(), 18.0)
    np.testing.assert_allclose(kp[4], [10.25, -4.75])  # the centre is keypoint 4
    np.testing.assert_allclose(kp[0], [12.25, -3.75])  # front-left corner of the yaw-0 car
    t = np.zeros((2, *GRID.shape))
    t[1, 10, 20] = 5.0
    t[0, 30, 3] = 4.0
    maps, out = _maps("pointdistiller", t)
    assert maps["pointdistiller/importance"][10, 20] == 5.0 and maps["pointdistiller/importance"][30, 3] == 4.0
    cells = np.asarray(out.points)  # the default top-256 of 6400 cells: both peaks among them
    for col, row in ((20, 10), (3, 30)):
        assert np.abs(cells - GRID.cell_to_xy(np.array([[col + 0.5, row + 0.5]]))[0]).sum(1).min() < 1e-9
    assert maps["pointdistiller/selected (top 256)"].sum() == 256
    pts = np.random.default_rng(0).uniform(-30, 30, size=(2000, 3))
    maps, out = _maps("pvd", points=pts, labels=np.zeros(2000, dtype=np.int64))
    xyz, grp = np.asarray(out.points), np.asarray(out.point_groups)
    assert len(xyz) == len(grp) <= 8 * 64 and set(grp.tolist()) == set(range(8))
    prob = maps["pvd/supervoxel sampling prob"]
    assert 0 < prob.max() <= 1 and prob.min() >= 0
    # points of one group share a cylinder sector: their azimuths span < one 22.5 degree sector
    for g in range(8):
        phi = np.degrees(np.arctan2(xyz[grp == g, 1], xyz[grp == g, 0]))
        assert np.ptp(phi) < 22.5 or np.ptp(np.mod(phi, 360)) < 22.5


def test_lidar_bev_features_and_sample_maps(sample):
    p = np.array([[0.1, 0.1, 1.0, 0.5], [0.2, 0.2, 3.0, 0.7], [5.1, 5.1, 0.0, 0.2]])
    f = lidar_bev_features(p, GRID)
    raw = np.array([[np.log(3), 3.0, 2.0, 0.6], [np.log(2), 0.0, 0.0, 0.2]])  # cells (40, 40), (50, 50)
    std = raw.std(axis=0)
    np.testing.assert_allclose(f[:, 40, 40], raw[0] / std)
    np.testing.assert_allclose(f[:, 50, 50], raw[1] / std)
    assert f[:, 0, 0].tolist() == [0, 0, 0, 0]
    img = sample_distill_maps(sample, half_range=25.6, cell=0.8, tile=128)
    assert img.shape[1] == 4 * 128 + 3 * GAP_PX and img.std() > 10
