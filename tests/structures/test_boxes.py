import numpy as np
import pytest
from nuscenes.utils.data_classes import Box
from pyquaternion import Quaternion

from kd3d.structures import Boxes3D, KittiCalib
from kd3d.structures.geometry import limit_period, pose_matrix


def random_boxes(n, seed=0, with_velocity=True):
    rng = np.random.default_rng(seed)
    data = np.concatenate(
        [
            rng.uniform(-40, 40, (n, 2)), rng.uniform(-2, 1, (n, 1)),
            rng.uniform(0.5, 10, (n, 3)), rng.uniform(-np.pi, np.pi, (n, 1)),
            rng.uniform(-10, 10, (n, 2)),
        ],
        axis=1,
    )
    return Boxes3D(data if with_velocity else data[:, :7])


def random_pose(rng, tilt=0.0):
    axis = np.array([rng.normal() * tilt, rng.normal() * tilt, 1.0])
    q = Quaternion(axis=axis / np.linalg.norm(axis), angle=rng.uniform(-np.pi, np.pi))
    return pose_matrix(q.elements, rng.uniform(-500, 500, 3))


def kitti_calib():
    # A realistic KITTI calibration (velodyne x fwd, y left, z up -> camera x right, y down, z fwd).
    tr = np.array([[7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03],
                   [1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02],
                   [9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]])
    r0 = np.array([[9.999239e-01, 9.837760e-03, -7.445048e-03],
                   [-9.869795e-03, 9.999421e-01, -4.278459e-03],
                   [7.402527e-03, 4.351614e-03, 9.999631e-01]])
    p2 = np.array([[7.215377e02, 0, 6.095593e02, 4.485728e01],
                   [0, 7.215377e02, 1.728540e02, 2.163791e-01],
                   [0, 0, 1, 2.745884e-03]])
    return KittiCalib(P2=p2, R0_rect=r0, Tr_velo_to_cam=tr)


def test_shapes_and_nan_velocity():
    b = random_boxes(5, with_velocity=False)
    assert b.data.shape == (5, 9)
    assert np.isnan(b.velocity).all()
    assert b.corners().shape == (5, 8, 3)
    with pytest.raises(ValueError, match=r"\(N, 7\) or \(N, 9\)"):
        Boxes3D(np.zeros((3, 5)))


def test_corners_axis_aligned():
    b = Boxes3D([[1.0, 2.0, 3.0, 4.0, 2.0, 1.0, 0.0]])
    c = b.corners()[0]
    assert np.allclose(c.min(0), [-1, 1, 2.5]) and np.allclose(c.max(0), [3, 3, 3.5])
    # first corner is front-left bottom
    assert np.allclose(c[0], [3, 3, 2.5])
    b90 = Boxes3D([[0, 0, 0, 4.0, 2.0, 1.0, np.pi / 2]])
    assert np.allclose(b90.corners()[0, 0], [-1, 2, -0.5])


def test_points_in_boxes():
    b = Boxes3D([[0, 0, 0, 4.0, 2.0, 2.0, np.pi / 4]])
    pts = np.array([[0, 0, 0], [1.0, 1.0, 0], [1.0, -1.0, 0], [0, 0, 1.5]])
    assert b.points_in_boxes(pts)[:, 0].tolist() == [True, True, False, False]


def test_nuscenes_matches_devkit_box_chain():
    rng = np.random.default_rng(1)
    boxes = random_boxes(20, seed=2)
    l2e, e2g = random_pose(rng, tilt=0.01), random_pose(rng, tilt=0.03)
    records = boxes.to_nuscenes(l2e, e2g)
    for i, rec in enumerate(records):
        x, y, z, l, w, h, yaw, vx, vy = boxes.data[i]
        box = Box([x, y, z], [w, l, h], Quaternion(axis=[0, 0, 1], angle=yaw), velocity=(vx, vy, 0.0))
        for m in (l2e, e2g):
            box.rotate(Quaternion(matrix=m[:3, :3]))
            box.translate(m[:3, 3])
        assert np.allclose(rec["translation"], box.center, atol=1e-9)
        assert np.allclose(rec["size"], box.wlh)
        assert abs(abs(np.dot(rec["rotation"], box.orientation.elements)) - 1) < 1e-9
        assert np.allclose(rec["velocity"], box.velocity[:2], atol=1e-9)


def test_nuscenes_round_trip():
    rng = np.random.default_rng(3)
    boxes = random_boxes(50, seed=4)
    l2e, e2g = random_pose(rng, tilt=0.01), random_pose(rng, tilt=0.05)
    recs = boxes.to_nuscenes(l2e, e2g)
    back = Boxes3D.from_nuscenes(
        [r["translation"] for r in recs], [r["size"] for r in recs], [r["rotation"] for r in recs],
        [r["velocity"] for r in recs], l2e, e2g,
    )
    assert np.allclose(back.data[:, :6], boxes.data[:, :6], atol=1e-8)
    assert np.allclose(limit_period(back.yaw - boxes.yaw), 0, atol=1e-8)
    # velocities: exact when the poses have no tilt; the global z component is dropped under tilt
    assert np.abs(back.velocity - boxes.velocity).max() < 0.2


def test_nuscenes_round_trip_flat_exact_velocity_and_nan():
    rng = np.random.default_rng(5)
    data = random_boxes(10, seed=6).data
    data[3, 7:] = np.nan
    boxes = Boxes3D(data)
    l2e, e2g = random_pose(rng), random_pose(rng)
    recs = boxes.to_nuscenes(l2e, e2g)
    back = Boxes3D.from_nuscenes([r["translation"] for r in recs], [r["size"] for r in recs],
                                 [r["rotation"] for r in recs], [r["velocity"] for r in recs], l2e, e2g)
    ok = ~np.isnan(boxes.velocity[:, 0])
    assert np.allclose(back.velocity[ok], boxes.velocity[ok], atol=1e-9)
    assert np.isnan(back.velocity[3]).all()


def ideal_calib():
    axes = np.array([[0.0, -1, 0, 0.1], [0, 0, -1, -0.08], [1, 0, 0, -0.27]])
    p2 = np.array([[700.0, 0, 600, 40], [0, 700, 180, 0.2], [0, 0, 1, 0.003]])
    return KittiCalib(P2=p2, R0_rect=np.eye(3), Tr_velo_to_cam=axes)


def test_kitti_round_trip_exact_for_level_camera():
    boxes = random_boxes(30, seed=10, with_velocity=False)
    calib = ideal_calib()
    kb = boxes.to_kitti(calib)
    back = Boxes3D.from_kitti(kb.location, kb.dimensions, kb.rotation_y, calib)
    assert np.allclose(back.data[:, :7 - 1], boxes.data[:, :6], atol=1e-9)
    assert np.allclose(limit_period(back.yaw - boxes.yaw), 0, atol=1e-9)
    assert np.allclose(limit_period(kb.rotation_y + boxes.yaw + np.pi / 2), 0, atol=1e-9)


def test_kitti_round_trip_and_standard_relation():
    calib = kitti_calib()
    boxes = random_boxes(30, seed=7, with_velocity=False)
    kb = boxes.to_kitti(calib, image_shape=(375, 1242))
    back = Boxes3D.from_kitti(kb.location, kb.dimensions, kb.rotation_y, calib)
    assert np.allclose(back.data[:, :6], boxes.data[:, :6], atol=1e-8)
    # KITTI keeps only the heading about the (slightly tilted) camera y axis: ~1e-4 rad is lost
    assert np.allclose(limit_period(back.yaw - boxes.yaw), 0, atol=1e-3)
    # for a near-identity rectification the classic relation ry ~ -yaw - pi/2 holds
    assert np.allclose(limit_period(kb.rotation_y + boxes.yaw + np.pi / 2), 0, atol=0.03)
    # location is the bottom centre: about h/2 lower (larger camera y) than the centre
    centre_cam = (calib.velo_to_rect @ np.c_[boxes.center, np.ones(30)].T).T[:, :3]
    assert np.allclose(kb.location[:, 1] - centre_cam[:, 1], boxes.dims[:, 2] / 2, atol=0.03)
    assert np.allclose(kb.dimensions, boxes.dims[:, [2, 1, 0]])
    # alpha = ry - atan2(x, z)
    assert np.allclose(limit_period(kb.alpha - kb.rotation_y + np.arctan2(kb.location[:, 0], kb.location[:, 2])), 0)


def test_kitti_bbox_from_projected_corners():
    calib = kitti_calib()
    b = Boxes3D([[15.0, 0.0, -0.8, 4.0, 1.8, 1.5, 0.0]])
    kb = b.to_kitti(calib, image_shape=(375, 1242))
    uv, depth = calib.velo_to_image(b.corners()[0])
    assert (depth > 0).all()
    assert np.allclose(kb.bbox[0], [uv[:, 0].min(), uv[:, 1].min(), uv[:, 0].max(), uv[:, 1].max()])
    x1, y1, x2, y2 = kb.bbox[0]
    assert 0 <= x1 < x2 <= 1241 and 0 <= y1 < y2 <= 374


def test_kitti_calib_text_round_trip(tmp_path):
    calib = kitti_calib()
    path = tmp_path / "000000.txt"
    path.write_text(calib.to_text())
    back = KittiCalib.from_file(path)
    assert np.allclose(back.velo_to_rect, calib.velo_to_rect) and np.allclose(back.P2, calib.P2)
    bad = tmp_path / "bad.txt"
    bad.write_text("P2: 1 2 3\n")
    with pytest.raises(ValueError, match="bad.txt"):
        KittiCalib.from_file(bad)
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        KittiCalib.from_file(tmp_path / "missing.txt")


@pytest.mark.parametrize("axis", ["x", "y"])
def test_flip_twice_is_identity_and_mirrors_corners(axis):
    boxes = random_boxes(10, seed=8)
    twice = boxes.flip(axis).flip(axis)
    assert np.allclose(twice.data[:, :6], boxes.data[:, :6])
    assert np.allclose(limit_period(twice.yaw - boxes.yaw), 0)
    flipped = boxes.flip(axis)
    k = 1 if axis == "x" else 0
    mirrored = boxes.corners().copy()
    mirrored[..., k] *= -1
    # same corner set (order may change under mirroring)
    a = np.sort(np.round(flipped.corners().reshape(-1, 3), 6), axis=0)
    b = np.sort(np.round(mirrored.reshape(-1, 3), 6), axis=0)
    assert np.allclose(a, b)


def test_rotate_scale_translate_consistent_with_corners():
    boxes = random_boxes(10, seed=9)
    ang = 0.7
    rotated = boxes.rotate(ang)
    c = np.cos(ang)
    s = np.sin(ang)
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    assert np.allclose(rotated.corners(), boxes.corners() @ rot.T)
    assert np.allclose(rotated.velocity, boxes.velocity @ rot[:2, :2].T)
    assert np.allclose(boxes.scale(1.1).corners(), boxes.corners() * 1.1)
    assert np.allclose(boxes.translate([1, 2, 3]).corners(), boxes.corners() + [1, 2, 3])
