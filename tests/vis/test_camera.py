"""Camera pictures: LiDAR points and box edges project onto the right pixels of the right camera."""
import dataclasses

import numpy as np
import pytest

from kd3d.structures import Boxes3D
from kd3d.vis.camera import project_box_edges, project_points, render_camera, render_cameras
from kd3d.vis.colors import CLASS_COLORS, colormap

from conftest import IMG_H, IMG_W, cam2lidar_for


def test_project_points_front_camera():
    k = np.array([[100.0, 0, 80], [0, 100.0, 48], [0, 0, 1]])
    c2l = cam2lidar_for(0.0)
    pts = np.array([[10.0, 0.0, 0.0], [10.0, 1.0, -1.0], [-5.0, 0.0, 0.0]])
    uv, depth, valid = project_points(pts, c2l, k)
    assert valid.tolist() == [True, True, False]
    np.testing.assert_allclose(depth[:2], [10.0, 10.0])
    np.testing.assert_allclose(uv[0], [80, 48])
    np.testing.assert_allclose(uv[1], [80 - 10, 48 + 10])  # left of centre (y left), below (z down)
    # an image augmentation (scale 0.5, shift 3 px) moves the pixels accordingly
    aug = np.array([[0.5, 0, 3], [0, 0.5, 0], [0, 0, 1]])
    uv2, _, _ = project_points(pts, c2l, k, aug)
    np.testing.assert_allclose(uv2[1], [0.5 * 70 + 3, 0.5 * 58])


def test_box_edges_clip_behind_camera():
    k = np.array([[100.0, 0, 80], [0, 100.0, 48], [0, 0, 1]])
    boxes = Boxes3D(np.array([[10.0, 0, 0, 4, 2, 2, 0], [-10.0, 0, 0, 4, 2, 2, 0], [0.0, 0, 0, 4, 2, 2, 0]]))
    edges = project_box_edges(boxes, cam2lidar_for(0.0), k)
    assert edges[0].shape == (14, 2, 2) and edges[1].shape == (0, 2, 2)
    assert 0 < len(edges[2]) <= 14 and np.isfinite(edges[2]).all()  # straddling box: clipped, finite


def test_render_camera_depth_colors_and_box(sample):
    img = render_camera(sample.images[0], sample.points[: sample.num_key_points], sample.cam2lidar[0],
                        sample.cam_intrinsics[0], sample.img_aug[0], gt_boxes=sample.gt_boxes,
                        gt_labels=sample.gt_labels, point_radius=0, depth_max=60.0)
    # the car (10 m ahead, 4 m long) outlines in the car colour around the image centre
    edges = project_box_edges(sample.gt_boxes[[0]], sample.cam2lidar[0], sample.cam_intrinsics[0])[0]
    u, v = edges[0].mean(axis=0)
    patch = img[int(v) - 2:int(v) + 3, int(u) - 2:int(u) + 3].reshape(-1, 3).astype(int)
    assert (np.abs(patch - CLASS_COLORS[0]).max(1) <= 10).any()
    # a ground point 15 m ahead gets the colour of its depth
    from kd3d.vis.camera import project_points as pp
    p = np.array([[15.0, 3.0, -1.8]])
    uv, d, _ = pp(p, sample.cam2lidar[0], sample.cam_intrinsics[0])
    one = render_camera(sample.images[0], p, sample.cam2lidar[0], sample.cam_intrinsics[0], point_radius=0)
    assert tuple(one[int(uv[0, 1]), int(uv[0, 0])]) == tuple(colormap(d, 0, 60, cmap="jet_r")[0])
    # near points are red, far ones blue (jet_r)
    near, far = colormap(np.array([2.0, 55.0]), 0, 60, cmap="jet_r")
    assert near[0] > near[2] and far[2] > far[0]


def test_render_cameras_grid_layout(sample):
    grid = render_cameras(sample, tile_width=None, labels=False)
    assert grid.shape == (2 * IMG_H, 3 * IMG_W, 3)
    # boxes only (depth colours of near points resemble the car orange)
    no_points = dataclasses.replace(sample, points=sample.points[:0], num_key_points=0, points_label=None)
    grid = render_cameras(no_points, tile_width=None, labels=False)
    assert grid.shape == (2 * IMG_H, 3 * IMG_W, 3)
    # the car (ahead) shows in CAM_FRONT = top middle tile, not in CAM_BACK = bottom middle
    def car_pixels(tile):
        return int((np.abs(tile.reshape(-1, 3).astype(int) - CLASS_COLORS[0]).max(1) <= 10).sum())
    top_mid = grid[:IMG_H, IMG_W:2 * IMG_W]
    bottom_mid = grid[IMG_H:, IMG_W:2 * IMG_W]
    assert car_pixels(top_mid) > 20 and car_pixels(bottom_mid) == 0
    # the pedestrian (behind-left, class 5) is in CAM_BACK_LEFT (bottom left)
    ped = (np.abs(grid[IMG_H:, :IMG_W].reshape(-1, 3).astype(int) - CLASS_COLORS[5]).max(1) <= 10).sum()
    assert ped > 10


def test_render_cameras_needs_images():
    from conftest import make_sample
    with pytest.raises(ValueError, match="no camera images"):
        render_cameras(make_sample(with_images=False))
