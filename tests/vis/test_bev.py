"""Scene pictures: points land where their xy says, colours follow the chosen channel, boxes are
drawn in their class colour at their place in BEV and in perspective."""
import numpy as np
import pytest

from kd3d.structures import Boxes3D
from kd3d.vis.bev import bev_pixels, perspective_camera, render_bev, render_perspective, render_scene
from kd3d.vis.colors import CLASS_COLORS, LIDARSEG_COLORS, PRED_COLOR, GT_COLOR, point_colors
from kd3d.structures.geometry import transform_points
from kd3d.vis._raster import project_pinhole

RANGE = (-25.0, -25.0, 25.0, 25.0)


def _near(img, u, v, color, r=2, tol=10):
    """True when a pixel within r of (u, v) has ``color`` (within tol per channel)."""
    h, w = img.shape[:2]
    u, v = int(round(u)), int(round(v))
    patch = img[max(v - r, 0):min(v + r + 1, h), max(u - r, 0):min(u + r + 1, w)].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.asarray(color)).max(axis=1) <= tol).any())


def test_bev_orientation_and_point_colors():
    pts = np.array([[20.0, 0.0, 2.0, 0, 0], [0.0, 20.0, -2.0, 0, 0]], dtype=np.float32)
    cols = point_colors(pts, "height")
    img = render_bev(pts, colors=cols, xy_range=RANGE, resolution=0.5, point_radius=1, rings=None)
    assert img.shape == (100, 100, 3)
    # +x is up (row 10), +y is left (col 10)
    assert tuple(img[10, 50]) == tuple(cols[0])
    assert tuple(img[50, 10]) == tuple(cols[1])
    # height colouring: the high point is red-ish, the low one blue-ish (turbo)
    assert cols[0, 0] > cols[0, 2] and cols[1, 2] > cols[1, 0]


def test_point_colors_channels(sample):
    p = sample.points
    inten = point_colors(p, "intensity")
    # ground intensity rises with x: the brightest ground points are at large x
    g = p[:3000]
    lum = inten[:3000].astype(int).sum(1)
    assert np.corrcoef(g[:, 0], lum)[0, 1] > 0.9
    t = point_colors(p, "time")
    assert (t[: sample.num_key_points] == t[0]).all() and not (t[-1] == t[0]).all()
    lab = point_colors(p[: sample.num_key_points], "label", labels=sample.points_label)
    assert (lab[:3000] == LIDARSEG_COLORS[11]).all() and (lab[3000:3300] == LIDARSEG_COLORS[4]).all()
    with pytest.raises(ValueError, match="color_by"):
        point_colors(p, "rainbow")
    with pytest.raises(ValueError, match="points_label"):
        point_colors(p, "label")


def test_bev_boxes_class_colors_and_heading(sample, preds):
    img = render_scene(sample, preds, xy_range=RANGE, resolution=0.1, color_by="none")
    car, ped = sample.gt_boxes.bev_corners()[0], sample.gt_boxes.bev_corners()[1]
    # the car's front-left corner and the rear edge midpoint carry the car colour
    for xy in (car[0], (car[1] + car[2]) / 2):
        u, v = bev_pixels(xy[None], RANGE, 0.1)[0]
        assert _near(img, u, v, CLASS_COLORS[0]), xy
    u, v = bev_pixels(ped[0][None], RANGE, 0.1)[0]
    assert _near(img, u, v, CLASS_COLORS[5])
    # heading mark: a car-coloured pixel between centre and the front edge (x = 11.5 m)
    u, v = bev_pixels(np.array([[11.0, 0.0]]), RANGE, 0.1)[0]
    assert _near(img, u, v, CLASS_COLORS[0], r=1)
    # the false positive (truck) is drawn in the truck colour at y = -12, nothing there in GT-only
    u, v = bev_pixels(np.array([[2.0, -11.0]]), RANGE, 0.1)[0]
    assert _near(img, u, v, CLASS_COLORS[1], r=3)
    gt_only = render_scene(sample, None, xy_range=RANGE, resolution=0.1, color_by="none")
    assert not _near(gt_only, u, v, CLASS_COLORS[1], r=3)
    # a score threshold drops it
    thr = render_scene(sample, preds, xy_range=RANGE, resolution=0.1, color_by="none", score_thresh=0.5)
    assert not _near(thr, u, v, CLASS_COLORS[1], r=3)


def test_bev_source_colors(sample, preds):
    img = render_scene(sample, preds, xy_range=RANGE, resolution=0.1, color_by="none", box_colors="source")
    u, v = bev_pixels(sample.gt_boxes.bev_corners()[1, :1], RANGE, 0.1)[0]
    assert _near(img, u, v, GT_COLOR)
    u, v = bev_pixels(np.array([[2.0, -11.0]]), RANGE, 0.1)[0]
    assert _near(img, u, v, PRED_COLOR, r=3)


def test_perspective_projects_box_and_points(sample):
    size = (400, 300)
    img = render_perspective(sample.points, colors=point_colors(sample.points, "none"), gt_boxes=sample.gt_boxes,
                             gt_labels=sample.gt_labels, size=size, legend=False)
    assert img.shape == (300, 400, 3)
    l2c, k = perspective_camera(size=size)
    corners = transform_points(sample.gt_boxes.corners()[0], l2c)
    uv = project_pinhole(corners, k)
    hits = sum(_near(img, u, v, CLASS_COLORS[0], r=2) for u, v in uv)
    assert hits >= 6  # car corners are drawn in the car colour
    # ground points (grey 200) appear below the horizon, and the sky above stays black
    assert (img[250:].reshape(-1, 3) == 200).all(axis=1).sum() > 100
    assert (img[:40] == 0).all()


def test_render_scene_views(sample):
    both = render_scene(sample, view="both", xy_range=RANGE, resolution=0.25)
    assert both.shape[0] == 200 and both.shape[1] == 200 + 300
    with pytest.raises(ValueError, match="view"):
        render_scene(sample, view="side")


def test_bad_preds_message():
    with pytest.raises(ValueError, match="scores"):
        render_bev(None, preds={"boxes": Boxes3D(np.zeros((2, 7))), "scores": np.ones(3), "labels": np.zeros(2)})


def test_box_edges_land_on_the_continuous_pixels():
    # 20 x 20 px at 1 m: a 3.6 m x 5.6 m box at the origin has edges at u = 7.2, 12.8 and v = 8.2, 11.8,
    # i.e. in columns 7 and 12, rows 8 and 11 (pixel i spans [i, i + 1))
    box = Boxes3D(np.array([[0.0, 0.0, 0.0, 3.6, 5.6, 1.0, 0.0]]))
    img = render_bev(None, gt_boxes=box, gt_labels=np.array([0]), xy_range=(-10, -10, 10, 10), resolution=1.0,
                     rings=None, line_width=0, legend=False)
    car = (np.abs(img.astype(int) - CLASS_COLORS[0]).max(-1) == 0)
    assert car[8, 7:13].all() and car[11, 7:13].all() and car[8:12, 7].all() and car[8:12, 12].all()
    assert not car[7].any() and not car[12].any() and not car[:, 6].any() and not car[:, 13].any()


def test_render_scene_puts_ego_forward_up(sample):
    import dataclasses

    from kd3d.structures.geometry import pose_matrix, rotation_z

    rot = np.eye(4)
    rot[:3, :3] = rotation_z(np.pi / 2)  # LiDAR frame with the car's forward along +y (real nuScenes)
    pts = sample.points.copy()
    pts[:, :3] = pts[:, :3] @ rot[:3, :3].T
    s = dataclasses.replace(sample, points=pts, gt_boxes=sample.gt_boxes.transform(rot),
                            lidar2ego=pose_matrix(rotation_z(-np.pi / 2), [0.0, 0.0, 1.8]))
    for ego_up, expect_up in ((True, True), (False, False)):
        img = render_scene(s, xy_range=RANGE, resolution=0.5, color_by="none", ego_up=ego_up, legend=False)
        v, u = np.nonzero((np.abs(img.astype(int) - CLASS_COLORS[0]).max(-1) <= 10))
        # the car 10 m ahead of the ego: up (row < 50 - 15) with ego_up, else on the left (+y)
        assert (v.mean() < 35 and abs(u.mean() - 50) < 6) == expect_up
        if not ego_up:
            assert u.mean() < 35 and abs(v.mean() - 50) < 6
