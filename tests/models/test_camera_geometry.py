"""Camera geometry: frustum points through img_aug^-1, K^-1 and cam2lidar; LiDAR depth targets."""
import math

import numpy as np
import pytest
import torch

from kd3d.models.camera.rig import camera_rotation, ring_rig, scale_crop_aug
from kd3d.models.camera.view_transformer import DepthBins, depth_targets, frustum_to_lidar, make_frustum


def _hand_camera():
    k = np.array([[400.0, 0.0, 300.0], [0.0, 380.0, 170.0], [0.0, 0.0, 1.0]])
    c2l = np.eye(4)
    c2l[:3, :3] = camera_rotation(math.radians(30.0))
    c2l[:3, 3] = [1.0, -0.5, 1.6]
    aug = scale_crop_aug(0.5, (12.0, 20.0))
    return k, c2l, aug


def _project(p_lidar, k, c2l, aug):
    """LiDAR point -> (u', v', depth) by hand: p_cam = R^T (p - t), pinhole, then the augmentation."""
    r, t = c2l[:3, :3], c2l[:3, 3]
    x, y, z = r.T @ (np.asarray(p_lidar) - t)
    u = k[0, 0] * x / z + k[0, 2]
    v = k[1, 1] * y / z + k[1, 2]
    up, vp, w = aug @ np.array([u, v, 1.0])
    return up / w, vp / w, z


def test_rotation_is_a_camera_looking_along_yaw():
    r = camera_rotation(math.radians(30.0))
    np.testing.assert_allclose(r @ [0, 0, 1], [math.cos(math.pi / 6), math.sin(math.pi / 6), 0], atol=1e-12)
    np.testing.assert_allclose(r @ [0, 1, 0], [0, 0, -1], atol=1e-12)  # image down = LiDAR down
    assert abs(np.linalg.det(r) - 1) < 1e-12


def test_frustum_point_maps_back_to_lidar_location():
    k, c2l, aug = _hand_camera()
    targets = np.array([[12.0, 5.0, 0.3], [30.0, 20.0, -1.0], [4.0, 1.5, 2.0]])
    frustum = torch.tensor([_project(p, k, c2l, aug) for p in targets], dtype=torch.float64).view(3, 1, 1, 3)
    # forward distance of the first target along the optical axis (independent of the projection)
    fwd = c2l[:3, :3] @ [0, 0, 1]
    assert abs(frustum[0, 0, 0, 2].item() - fwd @ (targets[0] - c2l[:3, 3])) < 1e-9
    as_t = lambda a: torch.tensor(a, dtype=torch.float64)[None, None]  # noqa: E731
    geom = frustum_to_lidar(frustum, as_t(k), as_t(c2l), as_t(aug))
    assert geom.shape == (1, 3, 1, 1, 3)
    np.testing.assert_allclose(geom[0, :, 0, 0].numpy(), targets, atol=1e-9)
    # a wrong augmentation matrix moves the point: the test can fail
    geom_wrong = frustum_to_lidar(frustum, as_t(k), as_t(c2l), as_t(np.eye(3)))
    assert np.abs(geom_wrong[0, :, 0, 0].numpy() - targets).max() > 0.5


def test_frustum_cell_centres_and_bins():
    bins = DepthBins(1.0, 60.0, 1.0)
    assert bins.num == 59
    fr = make_frustum((64, 96), 16, bins)
    assert fr.shape == (59, 4, 6, 3)
    torch.testing.assert_close(fr[0, 0, 0], torch.tensor([8.0, 8.0, 1.5]))
    torch.testing.assert_close(fr[58, 3, 5], torch.tensor([88.0, 56.0, 59.5]))
    torch.testing.assert_close(bins.index(torch.tensor([0.5, 1.0, 1.99, 59.99, 60.0])), torch.tensor([-1, 0, 0, 58, -1]))
    with pytest.raises(ValueError, match="multiple"):
        make_frustum((60, 96), 16, bins)


def test_bad_matrix_shapes_name_the_field():
    fr = make_frustum((32, 32), 16, DepthBins(1.0, 5.0, 1.0))
    with pytest.raises(ValueError, match="cam2lidar"):
        frustum_to_lidar(fr, torch.eye(3)[None, None], torch.eye(3)[None, None], torch.eye(3)[None, None])


def test_depth_targets_nearest_point_wins():
    image_size, stride = (64, 96), 16
    intr, c2l = ring_rig(2, image_size, hfov_deg=90.0)
    aug = np.stack([np.eye(3), scale_crop_aug(0.8, (4.0, 2.0))])
    bins = DepthBins(1.0, 41.0, 2.0)
    # two points on one ray of camera 1 (looking along -x), nearer at 8 m, farther at 20 m;
    # a point behind camera 1 (so in front of camera 0); a sweep point (dt > 0) that is ignored
    near_cam = np.array([0.7, 0.3, 8.0])
    far_cam = near_cam * 2.5
    to_lidar = lambda p: c2l[1, :3, :3] @ p + c2l[1, :3, 3]  # noqa: E731
    pts = np.array([
        [*to_lidar(far_cam), 0, 0], [*to_lidar(near_cam), 0, 0], [*to_lidar(-near_cam), 0, 0],
        [*to_lidar(near_cam * 0.5), 0, 0.05],
    ], dtype=np.float32)
    t = lambda a: torch.tensor(a, dtype=torch.float32)[None]  # noqa: E731
    target = depth_targets([torch.from_numpy(pts)], t(intr), t(c2l), t(aug), image_size, stride, bins)
    assert target.shape == (2, 4, 6)
    u, v, z = _project(to_lidar(near_cam), intr[1], c2l[1], aug[1])
    col, row = int(u // stride), int(v // stride)
    expected = torch.full((2, 4, 6), -1, dtype=torch.long)
    expected[1, row, col] = int((z - 1.0) // 2.0)  # 8 m -> bin 3
    assert expected[1, row, col] == 3
    u, v, z = _project(to_lidar(-near_cam), intr[0], c2l[0], aug[0])
    assert 6.0 < z < 8.0  # 8 m behind camera 1 = 7 m in front of camera 0 (ring radius 0.5 m)
    expected[0, int(v // stride), int(u // stride)] = int((z - 1.0) // 2.0)
    assert torch.equal(target, expected)


def test_same_pixel_convention_as_data_transforms():
    from kd3d.data.transforms import project_to_image

    k, c2l, aug = _hand_camera()
    p = np.array([[12.0, 5.0, 0.3]])
    uv, z = project_to_image(p, c2l, k, aug)
    np.testing.assert_allclose([*uv[0], z[0]], _project(p[0], k, c2l, aug), rtol=1e-12)
