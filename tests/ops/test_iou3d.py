"""Rotated IoU: analytic cases, shapely cross-check, torch round trip."""
import numpy as np
import pytest

from kd3d.ops.iou3d import (
    bev_iou, bev_iou_aligned, iou3d, iou3d_aligned, rect_corners, rect_intersection,
)


def box(x=0.0, y=0.0, z=0.0, l=2.0, w=1.0, h=1.0, yaw=0.0):
    return [x, y, z, l, w, h, yaw]


def test_identical_boxes_give_one():
    rng = np.random.default_rng(1)
    b = np.concatenate([rng.uniform(-60, 60, (50, 3)), rng.uniform(0.2, 12, (50, 3)),
                        rng.uniform(-np.pi, np.pi, (50, 1))], axis=1)
    assert np.abs(np.diag(bev_iou(b, b)) - 1).max() < 1e-12
    assert np.abs(np.diag(iou3d(b, b)) - 1).max() < 1e-12
    assert np.abs(bev_iou_aligned(b, b) - 1).max() < 1e-12
    assert np.abs(iou3d_aligned(b, b) - 1).max() < 1e-12


def test_square_rotated_45_over_itself():
    # unit square vs itself rotated 45 deg: intersection is a regular octagon of area 2(sqrt2-1)
    a = np.array([box(l=1, w=1)])
    b = np.array([box(l=1, w=1, yaw=np.pi / 4)])
    inter = 2 * (np.sqrt(2) - 1)
    expected = inter / (2 - inter)
    assert bev_iou(a, b)[0, 0] == pytest.approx(expected, abs=1e-14)
    assert iou3d(a, b)[0, 0] == pytest.approx(expected, abs=1e-14)


def test_cross_of_rectangles():
    # 2x1 and the same rotated 90 deg about the common centre: overlap 1x1
    a = np.array([box(l=2, w=1)])
    b = np.array([box(l=2, w=1, yaw=np.pi / 2)])
    assert bev_iou(a, b)[0, 0] == pytest.approx(1 / 3, abs=1e-14)
    # 180 deg rotation is the same footprint
    c = np.array([box(l=2, w=1, yaw=np.pi)])
    assert bev_iou(a, c)[0, 0] == pytest.approx(1.0, abs=1e-14)


def test_disjoint_touching_contained():
    a = np.array([box(l=2, w=2)])
    disjoint = np.array([box(x=5.0, l=2, w=2, yaw=0.3)])
    touching = np.array([box(x=2.0, l=2, w=2)])  # shares the edge x = 1
    corner = np.array([box(x=2.0, y=2.0, l=2, w=2)])  # shares one corner
    inside = np.array([box(x=0.25, l=1, w=1, yaw=0.7)])
    assert bev_iou(a, disjoint)[0, 0] == 0.0
    assert bev_iou(a, touching)[0, 0] == pytest.approx(0.0, abs=1e-13)
    assert bev_iou(a, corner)[0, 0] == pytest.approx(0.0, abs=1e-13)
    assert bev_iou(a, inside)[0, 0] == pytest.approx(1 / 4, abs=1e-13)
    assert bev_iou(inside, a)[0, 0] == pytest.approx(1 / 4, abs=1e-13)


def test_shifted_box_and_z_overlap():
    a = np.array([box(l=4, w=2, h=2, yaw=0.4)])
    b = np.array([box(l=4, w=2, h=2, z=1.0, yaw=0.4)])  # same footprint, half the height overlaps
    assert bev_iou(a, b)[0, 0] == pytest.approx(1.0, abs=1e-13)
    assert iou3d(a, b)[0, 0] == pytest.approx(8 / (16 + 16 - 8), abs=1e-13)
    # shifted along its own heading by 1 m: overlap 3x2 of 4x2 boxes
    d = np.array([np.cos(0.4), np.sin(0.4)])
    c = np.array([box(x=d[0], y=d[1], l=4, w=2, h=2, yaw=0.4)])
    assert bev_iou(a, c)[0, 0] == pytest.approx(6 / 10, abs=1e-13)
    far = np.array([box(l=4, w=2, h=2, z=3.0)])
    assert iou3d(a, far)[0, 0] == 0.0


def test_matches_shapely_on_random_and_degenerate_pairs():
    shapely = pytest.importorskip("shapely.geometry")
    rng = np.random.default_rng(0)

    def rand(n):
        return np.concatenate([rng.uniform(-3, 3, (n, 2)), rng.uniform(-1, 1, (n, 1)),
                               rng.uniform(0.3, 4, (n, 3)), rng.uniform(-np.pi, np.pi, (n, 1))], axis=1)

    a, b = rand(40), rand(45)
    b[:10] = a[:10]
    b[10:20] = a[10:20]
    b[10:20, 6] += np.pi / 2 * rng.integers(0, 4, 10)  # coincident edges
    b[20:25] = a[20:25]
    b[20:25, 0] += a[20:25, 3] * np.cos(a[20:25, 6])  # shifted by its length: touching
    b[20:25, 1] += a[20:25, 3] * np.sin(a[20:25, 6])
    iou = bev_iou(a, b)
    ca, cb = rect_corners(a[:, [0, 1, 3, 4, 6]]), rect_corners(b[:, [0, 1, 3, 4, 6]])
    ref = np.zeros_like(iou)
    for i in range(len(a)):
        for j in range(len(b)):
            pa, pb = shapely.Polygon(ca[i]), shapely.Polygon(cb[j])
            inter = pa.intersection(pb).area
            ref[i, j] = inter / (pa.area + pb.area - inter)
    assert np.abs(iou - ref).max() < 1e-12
    assert np.abs(bev_iou_aligned(a[:40], b[:40]) - np.diag(ref)).max() < 1e-12


def test_rect_intersection_and_empty_and_errors():
    r = np.array([[0.0, 0.0, 2.0, 2.0, 0.0]])
    assert rect_intersection(r, r)[0, 0] == pytest.approx(4.0, abs=1e-14)
    assert bev_iou(np.zeros((0, 7)), np.array([box()])).shape == (0, 1)
    assert iou3d(np.array([box()]), np.zeros((0, 9))).shape == (1, 0)
    zero = np.array([box(l=0.0)])
    assert bev_iou(zero, zero)[0, 0] == 0.0
    with pytest.raises(ValueError, match="expected an"):
        bev_iou(np.zeros((3, 5)), np.zeros((3, 7)))
    with pytest.raises(ValueError, match="equal counts"):
        bev_iou_aligned(np.zeros((3, 7)), np.zeros((2, 7)))


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    a = torch.tensor([box(l=1, w=1)], dtype=torch.float32)
    b = torch.tensor([box(l=1, w=1, yaw=np.pi / 4)], dtype=torch.float32)
    out = bev_iou(a, b)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == (1, 1)
    inter = 2 * (np.sqrt(2) - 1)
    assert out.item() == pytest.approx(inter / (2 - inter), abs=1e-6)
    assert isinstance(iou3d(a, b.double()), torch.Tensor)
