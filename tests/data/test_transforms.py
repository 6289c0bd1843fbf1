"""Transforms on hand-made Samples: camera/LiDAR alignment, box consistency, filters, GT sampling."""
import numpy as np
import pytest

from kd3d.data.gt_database import GTDatabaseSampler, bev_overlap, build_gt_database
from kd3d.data.transforms import (
    BoxRangeFilter, Compose, GlobalRotScaleTrans, ImageResizeCrop, PointRangeFilter, PointShuffle, RandomFlip3D,
    apply_bev_transform, project_to_image,
)
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.geometry import rotation_z
from kd3d.structures.sample import Sample

K = np.array([[40.0, 0, 64], [0, 40.0, 48], [0, 0, 1]])


def _cam2lidar(yaw):
    """Camera looking along LiDAR direction ``yaw`` (cam z forward, x right, y down), 1.5 m up."""
    m = np.eye(4)
    m[:3, :3] = rotation_z(yaw) @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)
    m[:3, 3] = [0.3, 0.1, 1.5]
    return m


def _sample(rng, with_images=True):
    pts = np.concatenate([rng.uniform([-20, -20, -2], [20, 20, 2], (300, 3)), rng.uniform(0, 1, (300, 1)),
                          np.zeros((300, 1))], axis=1)
    pts[200:, 4] = 0.05  # 100 sweep points
    boxes = Boxes3D(np.array([[8.0, 2.0, 0.0, 4.0, 2.0, 1.6, 0.4, 3.0, -1.0],
                              [-6.0, -5.0, 0.2, 0.8, 0.8, 1.8, -1.2, 0.5, 0.7],
                              [30.0, 0.0, 0.0, 4.0, 2.0, 1.6, 0.0, np.nan, np.nan]]))
    cams = np.stack([_cam2lidar(0.0), _cam2lidar(np.pi / 2)])
    images = None
    if with_images:
        blocks = rng.integers(0, 256, (2, 6, 8, 3), dtype=np.uint8)  # 16x16 px blocks -> 96x128 images
        images = np.repeat(np.repeat(blocks, 16, axis=1), 16, axis=2)
    return Sample(
        token="t0", points=pts.astype(np.float32), num_key_points=200,
        points_label=(np.arange(200) % 17).astype(np.int64), gt_boxes=boxes, gt_labels=np.array([0, 5, 0]),
        gt_attrs=np.array([1, 6, -1]), gt_num_points=np.array([10, 3, 0]), images=images, cam_names=["A", "B"],
        cam_intrinsics=np.stack([K, K]), cam2lidar=cams, img_aug=np.tile(np.eye(3), (2, 1, 1)),
        meta={"box_meta": {"instance": np.array(["a", "b", "c"])}},
    ).validate()


def _front_points(s, cam, n=50, seed=1):
    rng = np.random.default_rng(seed)
    pc = np.concatenate([rng.uniform(-3, 3, (n, 2)), rng.uniform(4, 20, (n, 1))], axis=1)  # camera frame
    return pc @ s.cam2lidar[cam][:3, :3].T + s.cam2lidar[cam][:3, 3]


@pytest.mark.parametrize("transform", [
    GlobalRotScaleTrans((-0.8, 0.8), (0.9, 1.1), (0.5, 0.5, 0.2), seed=3),
    RandomFlip3D(1.0, 0.0, seed=0), RandomFlip3D(0.0, 1.0, seed=0),
    Compose([RandomFlip3D(1.0, 1.0, seed=1), GlobalRotScaleTrans((0.3, 0.3), (1.2, 1.2), seed=2)]),
])
def test_bev_transform_keeps_cameras_aligned(transform):
    s = _sample(np.random.default_rng(0), with_images=False)
    for cam in range(2):
        p = _front_points(s, cam)
        uv0, d0 = project_to_image(p, s.cam2lidar[cam], s.cam_intrinsics[cam])
        s_aug = transform(s)
        p_aug = p @ s_aug.bev_aug[:3, :3].T + s_aug.bev_aug[:3, 3]
        uv1, d1 = project_to_image(p_aug, s_aug.cam2lidar[cam], s_aug.cam_intrinsics[cam])
        np.testing.assert_allclose(uv1, uv0, atol=1e-6)
        assert not np.allclose(s_aug.bev_aug, np.eye(4))


def test_bev_transform_points_boxes_velocity_consistent():
    rng = np.random.default_rng(0)
    s = _sample(rng, with_images=False)
    # points placed inside box 0, and the velocity end point c + v (1 s later)
    box = s.gt_boxes[0]
    inside = box.center + rng.uniform(-0.4, 0.4, (20, 3)) * box.dims[0] @ rotation_z(box.yaw[0]).T
    assert box.points_in_boxes(inside).all()
    angle, scale, flip_y = 0.7, 1.15, True
    m = np.eye(4)
    m[:3, :3] = scale * rotation_z(angle) @ np.diag([1, -1 if flip_y else 1, 1])
    m[:3, 3] = [1.0, -2.0, 0.3]
    out = apply_bev_transform(s, m, size_scale=scale)
    moved = inside @ m[:3, :3].T + m[:3, 3]
    assert out.gt_boxes[0].points_in_boxes(moved).all()
    np.testing.assert_allclose(out.points[:, :3], s.points[:, :3] @ m[:3, :3].T + m[:3, 3], atol=1e-4)
    v_end = np.append(box.center[0, :2] + box.velocity[0], box.center[0, 2])
    v_new = (m[:3, :3] @ v_end + m[:3, 3])[:2] - out.gt_boxes.center[0, :2]
    np.testing.assert_allclose(out.gt_boxes.velocity[0], v_new, atol=1e-9)
    np.testing.assert_allclose(out.gt_boxes.dims, s.gt_boxes.dims * scale)
    assert np.isnan(out.gt_boxes.velocity[2]).all()
    # the input sample is untouched
    assert np.allclose(s.bev_aug, np.eye(4)) and s.gt_boxes.data[0, 0] == 8.0


def test_image_resize_crop_flip_hits_same_pixel():
    s = _sample(np.random.default_rng(0))
    t = ImageResizeCrop((40, 56), resize_range=(0.0, 0.2), random_crop=True, p_flip=0.5, seed=5)
    checked = 0
    for trial in range(4):
        out = t(s)
        assert out.images.shape == (2, 40, 56, 3)
        for cam in range(2):
            # pixels at block centres of the original image -> LiDAR points at depth 12 m
            bu, bv = np.meshgrid(np.arange(8) * 16 + 8.0, np.arange(6) * 16 + 8.0)
            uv = np.stack([bu.ravel(), bv.ravel()], 1)
            pc = np.concatenate([(uv - K[:2, 2]) / K[0, 0] * 12.0, np.full((len(uv), 1), 12.0)], 1)
            p = pc @ s.cam2lidar[cam][:3, :3].T + s.cam2lidar[cam][:3, 3]
            uv0, _ = project_to_image(p, s.cam2lidar[cam], s.cam_intrinsics[cam])
            np.testing.assert_allclose(uv0, uv, atol=1e-6)
            uv1, _ = project_to_image(p, out.cam2lidar[cam], out.cam_intrinsics[cam], out.img_aug[cam])
            ok = (uv1[:, 0] >= 1) & (uv1[:, 0] < 55) & (uv1[:, 1] >= 1) & (uv1[:, 1] < 39)
            for (u0, v0), (u1, v1) in zip(uv[ok], uv1[ok]):
                assert (out.images[cam, int(v1), int(u1)] == s.images[cam, int(v0), int(u0)]).all()
                checked += 1
    assert checked > 20
    assert s.images.shape == (2, 96, 128, 3)


def test_point_range_filter_keeps_labels_and_key_count():
    s = _sample(np.random.default_rng(0))
    out = PointRangeFilter([-10, -10, -1, 10, 10, 1])(s)
    keep = ((s.points[:, :3] >= [-10, -10, -1]) & (s.points[:, :3] < [10, 10, 1])).all(1)
    assert out.num_key_points == keep[:200].sum() and len(out.points) == keep.sum()
    np.testing.assert_array_equal(out.points_label, s.points_label[keep[:200]])
    assert (out.points[: out.num_key_points, 4] == 0).all() and (out.points[out.num_key_points:, 4] > 0).all()
    out.validate()
    with pytest.raises(ValueError, match="point_range"):
        PointRangeFilter([0, 1, 2])


def test_box_range_filter_filters_meta_too():
    s = _sample(np.random.default_rng(0))
    out = BoxRangeFilter([-20, -20, -5, 20, 20, 3], min_points=1)(s)
    assert len(out.gt_boxes) == 2
    out2 = BoxRangeFilter([-20, -20, 20, 20], min_points=5)(s)
    np.testing.assert_array_equal(out2.meta["box_meta"]["instance"], ["a"])
    np.testing.assert_array_equal(out2.gt_attrs, [1])
    out2.validate()


def test_point_shuffle_is_a_seeded_permutation_within_parts():
    s = _sample(np.random.default_rng(0))
    s.points[:200, 3] = s.points_label.astype(np.float32)  # label readable from the point
    a, b = PointShuffle(seed=7)(s), PointShuffle(seed=7)(s)
    c = PointShuffle(seed=8)(s)
    np.testing.assert_array_equal(a.points, b.points)
    assert not np.array_equal(a.points, c.points) and not np.array_equal(a.points, s.points)
    np.testing.assert_array_equal(a.points[:200, 3], a.points_label.astype(np.float32))
    assert sorted(map(tuple, a.points[200:])) == sorted(map(tuple, s.points[200:]))


def test_compose_reseed_changes_stream():
    s = _sample(np.random.default_rng(0), with_images=False)
    t = Compose([GlobalRotScaleTrans(seed=0)])
    m1 = t(s).bev_aug
    t.reseed(0)
    m2 = t(s).bev_aug
    t.reseed(1)
    m3 = t(s).bev_aug
    assert not np.allclose(m1, m2)  # reseed(0) is a different stream from seed=0 (Compose offsets)
    assert not np.allclose(m2, m3)
    t.reseed(1)
    np.testing.assert_allclose(t(s).bev_aug, m3)


def test_bev_overlap_matches_shapely():
    shapely = pytest.importorskip("shapely.geometry")
    rng = np.random.default_rng(0)
    n = 40
    data = np.concatenate([rng.uniform(-5, 5, (n, 2)), np.zeros((n, 1)), rng.uniform(0.5, 4, (n, 3)),
                           rng.uniform(-np.pi, np.pi, (n, 1))], 1)
    b = Boxes3D(data)
    got = bev_overlap(b, b)
    polys = [shapely.Polygon(c) for c in b.bev_corners()]
    want = np.array([[p.intersects(q) for q in polys] for p in polys])
    assert got.diagonal().all()
    np.testing.assert_array_equal(got, want)


class _ListDataset:
    class_names = ("car", "pedestrian")

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def get_raw(self, i):
        return self.samples[i]


def test_gt_database_roundtrip_and_sampling(tmp_path):
    rng = np.random.default_rng(0)
    src = _sample(rng, with_images=False)
    # put dense points into source boxes 0 (car) and 1 (pedestrian)
    extra = []
    for k in range(2):
        local = rng.uniform(-0.45, 0.45, (30, 3)) * src.gt_boxes.dims[k]
        extra.append(local @ rotation_z(src.gt_boxes.yaw[k]).T + src.gt_boxes.center[k])
    extra = np.concatenate([np.concatenate(extra), np.ones((60, 1)), np.zeros((60, 1))], 1).astype(np.float32)
    src.points = np.concatenate([extra, src.points])
    src.num_key_points += 60
    src.points_label = np.concatenate([np.full(60, 4), src.points_label])
    src.gt_labels = np.array([0, 1, 0])
    db = tmp_path / "db.npz"
    counts = build_gt_database(_ListDataset([src]), db, min_points=1)
    assert counts == {"car": 1, "pedestrian": 1}
    with np.load(db, allow_pickle=False) as z:
        assert z["offsets"][-1] == len(z["points"]) >= 60

    # target: a sample whose only box sits far away; ask for 1 car and 1 pedestrian
    tgt = _sample(np.random.default_rng(1), with_images=False)
    tgt = BoxRangeFilter([25, -5, 35, 5])(tgt)  # keep the box at x=30
    sampler = GTDatabaseSampler(db, ("car", "pedestrian"), {"car": 2, "pedestrian": 1}, min_points=5, seed=0)
    out = sampler(tgt).validate()
    assert len(out.gt_boxes) == 3 and list(out.gt_labels) == [0, 0, 1]
    ov = bev_overlap(out.gt_boxes, out.gt_boxes)
    assert not (ov & ~np.eye(3, dtype=bool)).any()
    inside = out.gt_boxes[1:].points_in_boxes(out.points).any(1)
    assert inside.sum() == out.gt_num_points[1:].sum() >= 60
    np.testing.assert_array_equal(out.meta["box_meta"]["instance"], ["c", "", ""])
    assert out.points_label is not None and (out.points_label[inside[: out.num_key_points]] > 0).all()

    # a pasted object that would collide with an existing box is rejected
    blocked = _sample(np.random.default_rng(2), with_images=False)
    out2 = GTDatabaseSampler(db, ("car", "pedestrian"), {"car": 5}, min_points=5, seed=0)(blocked)
    assert len(out2.gt_boxes) == len(blocked.gt_boxes)


def test_points_in_each_box_matches_dense_rule():
    from kd3d.data.gt_database import points_in_each_box

    rng = np.random.default_rng(3)
    pts = rng.uniform(-10, 10, (5000, 3))
    n = 15
    boxes = Boxes3D(np.concatenate([rng.uniform(-8, 8, (n, 3)), rng.uniform(0.5, 5, (n, 3)),
                                    rng.uniform(-np.pi, np.pi, (n, 1))], 1))
    dense = boxes.points_in_boxes(pts)
    got = points_in_each_box(pts, boxes)
    assert dense.sum() > 100
    for k in range(n):
        np.testing.assert_array_equal(got[k], np.flatnonzero(dense[:, k]))
