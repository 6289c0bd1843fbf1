import numpy as np
import pytest
import torch

from kd3d.ops.nms import batched_nms, circle_nms


def test_circle_nms_analytic():
    # three boxes on a line: 0 at x=0 (best), 1 at x=0.5 (suppressed by 0), 2 at x=1.5 (kept)
    centers = np.array([[0.0, 0.0], [0.5, 0.0], [1.5, 0.0], [0.0, 0.99]])
    scores = np.array([0.9, 0.8, 0.7, 0.95])
    keep = circle_nms(centers, scores, radius=1.0)
    # 3 (0.95) suppresses 0 (dist 0.99 < 1); 1 at dist sqrt(.25+.98) > 1 is kept; 2 kept
    assert keep.tolist() == [3, 1, 2]


def test_circle_nms_boundary_is_strict_and_torch_roundtrip():
    centers = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    scores = torch.tensor([0.5, 0.6])
    keep = circle_nms(centers, scores, radius=1.0)
    assert isinstance(keep, torch.Tensor) and keep.dtype == torch.int64
    assert keep.tolist() == [1, 0]  # distance exactly 1 is not < 1
    assert circle_nms(centers, scores, radius=1.01).tolist() == [1]
    assert circle_nms(centers, scores, radius=0.5, post_max=1).tolist() == [1]
    assert circle_nms(centers, scores, radius=0.5, pre_max=1).tolist() == [1]


def test_circle_nms_empty_and_bad_input():
    assert circle_nms(np.zeros((0, 2)), np.zeros(0), 1.0).shape == (0,)
    with pytest.raises(ValueError, match="centers"):
        circle_nms(np.zeros((3, 2)), np.zeros(2), 1.0)


def test_batched_circle_nms_groups_do_not_interact():
    boxes = np.zeros((3, 7))
    boxes[:, 3:6] = 1.0
    scores = np.array([0.9, 0.8, 0.7])
    keep = batched_nms(boxes, scores, np.array([0, 1, 0]), mode="circle", radius=1.0)
    assert keep.tolist() == [0, 1]


def _box(x, y, l, w, yaw=0.0):
    return [x, y, 0.0, l, w, 1.0, yaw]


def test_rotated_nms_analytic_iou():
    from kd3d.ops.nms import rotated_nms

    # 2x2 squares: box 1 shifted by 1 from box 0 -> IoU 2/6 = 1/3; box 2 shifted by 1.9 from
    # box 3 -> IoU 0.2/7.8 = 0.0256
    boxes = np.array([_box(0, 0, 2, 2), _box(1, 0, 2, 2), _box(11.9, 0, 2, 2), _box(10, 0, 2, 2)])
    scores = np.array([0.9, 0.8, 0.6, 0.7])
    assert rotated_nms(boxes, scores, 0.3).tolist() == [0, 3, 2]
    assert rotated_nms(boxes, scores, 0.34).tolist() == [0, 1, 3, 2]
    assert rotated_nms(boxes, scores, 0.02).tolist() == [0, 3]
    assert rotated_nms(boxes, scores, 0.3, post_max=2).tolist() == [0, 3]


def test_rotated_nms_uses_yaw():
    from kd3d.ops.nms import rotated_nms

    # square vs the same square turned 45 degrees: intersection = regular octagon 8(sqrt2 - 1),
    # IoU = 8(sqrt2-1) / (8 - 8(sqrt2-1)) = 0.7071...
    iou = 8 * (np.sqrt(2) - 1) / (8 - 8 * (np.sqrt(2) - 1))
    boxes = torch.tensor([_box(0, 0, 2, 2), _box(0, 0, 2, 2, np.pi / 4), _box(0, 0, 2, 2, np.pi / 2)])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert rotated_nms(boxes, scores, iou - 1e-3).tolist() == [0]
    assert rotated_nms(boxes, scores, iou + 1e-3).tolist() == [0, 1]
    keep = batched_nms(boxes, scores, torch.tensor([0, 1, 1]), mode="rotated", iou_threshold=0.5)
    assert keep.tolist() == [0, 1]
