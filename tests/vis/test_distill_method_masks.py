"""The distillers' own masks (kd3d.distill) as rendered by kd3d.vis.distill_masks."""
import numpy as np

from kd3d.structures import BEVGrid, Boxes3D
from kd3d.vis.distill_masks import (bevdistill_masks, distillbev_masks, lidar_bev_features, pointdistiller_cells,
                                    pvd_supervoxels, sample_distill_maps, unidistill_keypoints)

GRID = BEVGrid(-20.0, -20.0, 20.0, 20.0, 0.5, 0.5)
BOXES = Boxes3D(np.array([[10.25, -4.75, 0, 4, 2, 1.5, 0.0], [-6.25, 8.25, 0, 1, 1, 1.8, 0.5]]))


def test_bevdistill_gaussian_peaks_at_centres():
    g = bevdistill_masks(BOXES, GRID)["bevdistill/gaussian"]
    assert g.shape == GRID.shape
    for x, y in BOXES.center[:, :2]:
        col, row = np.floor(GRID.xy_to_cell(np.array([[x, y]]))[0]).astype(int)
        assert g[row, col] == 1.0
    assert g[0, 0] == 0.0


def test_distillbev_regions_and_attention():
    t = np.zeros((3, *GRID.shape))
    t[:, 5, 7] = 10.0
    m = distillbev_masks(BOXES, GRID, t, t)
    reg = m["distillbev/regions"]
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
    kp = unidistill_keypoints(BOXES)
    assert kp.shape == (18, 2)
    np.testing.assert_allclose(kp[4], [10.25, -4.75])  # the centre is keypoint 4
    np.testing.assert_allclose(kp[0], [12.25, -3.75])  # front-left corner of the yaw-0 car
    t = np.zeros((2, *GRID.shape))
    t[1, 10, 20] = 5.0
    t[0, 30, 3] = 4.0
    cells = pointdistiller_cells(t, GRID, num_items=2)
    np.testing.assert_allclose(cells[0], GRID.cell_to_xy(np.array([[20.5, 10.5]]))[0])
    np.testing.assert_allclose(cells[1], GRID.cell_to_xy(np.array([[3.5, 30.5]]))[0])
    pts = np.random.default_rng(0).uniform(-30, 30, size=(2000, 3))
    xyz, grp = pvd_supervoxels(pts, num_supervoxels=4, points_per_supervoxel=10)
    assert len(xyz) == len(grp) <= 40 and set(grp.tolist()) <= {0, 1, 2, 3} and len(set(grp.tolist())) == 4
    # points of one group share a cylinder sector: their azimuths span < one 22.5 degree sector
    for g in range(4):
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
    assert img.shape == (2 * (128 + 18), 4 * 128, 3) and img.std() > 10
