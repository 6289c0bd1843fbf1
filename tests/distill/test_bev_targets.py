"""Gaussian heatmaps, in-box masks and UniDistill keypoints by hand."""
import math

import pytest
import torch

from kd3d.distill.bev_targets import box_keypoints, boxes_cell_masks, draw_gaussian_heatmap, gaussian_radius
from kd3d.structures import BEVGrid


def test_gaussian_radius_hand_value():
    # 2x2 cells, overlap 0.5: cases give 3.633, 6.828 and 2*sqrt(2) - 2 (the minimum)
    assert gaussian_radius(2, 2, 0.5) == pytest.approx(2 * math.sqrt(2) - 2, rel=1e-9)
    assert gaussian_radius(10, 10, 0.1) > gaussian_radius(10, 10, 0.7)


def test_draw_gaussian_min_radius_one():
    grid = BEVGrid(0, 0, 5, 5, 1, 1)
    box = torch.tensor([[2.5, 1.5, 0, 0.5, 0.5, 1, 0, 0, 0]])  # tiny box -> radius clamps to 1
    h = draw_gaussian_heatmap(box, grid, min_overlap=0.1)
    assert h[1, 2].item() == 1.0
    assert h[1, 3].item() == pytest.approx(math.exp(-2.0))  # sigma = 3/6, d^2 = 1
    assert h[2, 3].item() == pytest.approx(math.exp(-4.0))
    assert h[1, 4].item() == 0.0 and h.sum().item() == pytest.approx(1 + 4 * math.exp(-2) + 4 * math.exp(-4))
    outside = torch.tensor([[9.0, 1.5, 0, 1, 1, 1, 0, 0, 0]])
    assert draw_gaussian_heatmap(outside, grid).sum() == 0


def test_draw_gaussian_radius_floor_min_zero_and_two():
    """UniDistill's response weights use max(0, floor(r)); DistillBEV's FP guard uses max(2, floor(r))."""
    grid = BEVGrid(0, 0, 7, 7, 1, 1)
    small = torch.tensor([[3.5, 3.5, 0, 0.5, 0.5, 1, 0, 0, 0]])
    assert gaussian_radius(0.5, 0.5, 0.7) < 1  # floor -> 0
    h0 = draw_gaussian_heatmap(small, grid, min_overlap=0.7, min_radius=0)
    assert h0[3, 3].item() == 1.0 and h0.sum().item() == 1.0  # one cell (sigma = 1/6)
    h1 = draw_gaussian_heatmap(small, grid, min_overlap=0.7, min_radius=1)  # the old UniDistill weights
    assert h1.sum().item() == pytest.approx(1 + 4 * math.exp(-2) + 4 * math.exp(-4), rel=1e-6)
    h2 = draw_gaussian_heatmap(small, grid, min_overlap=0.1, min_radius=2)  # sigma = 5/6
    assert h2[4, 4].item() == pytest.approx(math.exp(-2 / (2 * (5 / 6) ** 2)), rel=1e-6)  # e^-1.44 = 0.237
    assert h2[3, 5].item() == pytest.approx(math.exp(-4 / (2 * (5 / 6) ** 2)), rel=1e-6)
    assert h2[3, 6].item() == 0.0 and (h2 > 0).sum() == 25


def test_boxes_cell_masks_axis_aligned_and_rotated():
    grid = BEVGrid(-2, -2, 2, 2, 1, 1)
    box = torch.tensor([[0.0, 0.0, 0, 2.0, 2.0, 1, 0, 0, 0]])
    inside, area = boxes_cell_masks(box, grid)
    assert inside.sum() == 4 and inside[1:3, 1:3].all()
    assert area[1, 1].item() == pytest.approx(4.0) and math.isinf(area[0, 0].item())
    rot = torch.tensor([[0.0, 0.0, 0, 2.0, 2.0, 1, math.pi / 4, 0, 0]])
    inside_r, _ = boxes_cell_masks(rot, grid)
    assert inside_r.sum() == 4
    wide = torch.tensor([[0.0, 0.0, 0, 3.2, 1.2, 1, math.pi / 2, 0, 0]])  # long along y after rotation
    inside_w, _ = boxes_cell_masks(wide, grid)
    assert inside_w[:, 1:3].all() and inside_w.sum() == 8  # columns x=-0.5, 0.5; rows y=-1.5..1.5


def test_box_keypoints_axis_aligned_and_rotated():
    box = torch.tensor([[1.0, 2.0, 0, 4.0, 2.0, 1, 0.0, 0, 0]])
    kp = box_keypoints(box)[0].tolist()
    assert kp == [[3, 3], [-1, 3], [-1, 1], [3, 1], [1, 2], [3, 2], [1, 3], [-1, 2], [1, 1]]
    rot = box.clone()
    rot[0, 6] = math.pi / 2
    kr = box_keypoints(rot)[0]
    assert torch.allclose(kr[5], torch.tensor([1.0, 4.0], dtype=torch.float64), atol=1e-6)  # front along +y
    assert torch.allclose(kr[0], torch.tensor([0.0, 4.0], dtype=torch.float64), atol=1e-6)  # front-left
