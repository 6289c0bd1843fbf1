"""BEV geometry shared by the BEV distillation methods: Gaussian heatmaps, in-box masks and box
keypoints. Boxes are (M, 9) ``x y z l w h yaw vx vy`` in the LiDAR frame (``Boxes3D``
layout); maps live on a :class:`BEVGrid` (rows along y, columns along x).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from kd3d.structures.bev import BEVGrid


def gaussian_radius(length: float, width: float, min_overlap: float) -> float:
    """CenterNet/CenterPoint radius (in cells) of a box of ``length`` x ``width`` cells: the
    largest centre shift for which a box at the shifted centre still has IoU >= ``min_overlap``
    with the true one, taking the minimum of the three corner cases (both boxes shifted,
    predicted inside the GT, GT inside the predicted)."""
    h, w, o = float(length), float(width), float(min_overlap)
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(max(b1 * b1 - 4 * c1, 0.0))) / 2
    b2, c2 = 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + math.sqrt(max(b2 * b2 - 16 * c2, 0.0))) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + math.sqrt(max(b3 * b3 - 4 * a3 * c3, 0.0))) / 2
    return min(r1, r2, r3)


def draw_gaussian_heatmap(boxes: torch.Tensor, grid: BEVGrid, *, min_overlap: float = 0.1,
                          min_radius: int = 1) -> torch.Tensor:
    """Class-agnostic CenterPoint heatmap (H, W) float32 for one sample.

    Per box: radius ``r = max(min_radius, int(gaussian_radius(l/dx, w/dy, min_overlap)))``,
    ``sigma = (2r + 1) / 6``, ``exp(-(di^2 + dj^2) / (2 sigma^2))`` for cells within ``r`` of
    the centre cell (integer cell containing the box centre); overlapping boxes take the
    maximum. Boxes whose centre lies outside the grid are skipped.
    """
    # numpy for the per-box windows: a scene has hundreds of small boxes and per-op torch overhead
    # dominated (about 0.2 ms per box); the values are the same float32 Gaussians.
    heat = np.zeros(grid.shape, dtype=np.float32)
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, boxes.shape[-1] if len(boxes) else 9)
    for box in boxes.tolist():
        x, y, l, w = box[0], box[1], box[3], box[4]
        col, row = math.floor((x - grid.xmin) / grid.dx), math.floor((y - grid.ymin) / grid.dy)
        if not (0 <= col < grid.nx and 0 <= row < grid.ny) or l <= 0 or w <= 0:
            continue
        r = max(int(min_radius), int(gaussian_radius(l / grid.dx, w / grid.dy, min_overlap)))
        sigma = (2 * r + 1) / 6.0
        r0, r1 = max(row - r, 0), min(row + r + 1, grid.ny)
        c0, c1 = max(col - r, 0), min(col + r + 1, grid.nx)
        di = np.arange(r0, r1, dtype=np.float32)[:, None] - np.float32(row)
        dj = np.arange(c0, c1, dtype=np.float32)[None, :] - np.float32(col)
        g = np.exp(-(di * di + dj * dj) / np.float32(2 * sigma * sigma))
        np.maximum(heat[r0:r1, c0:c1], g, out=heat[r0:r1, c0:c1])
    heat = torch.from_numpy(heat)
    return heat


def batch_gaussian_heatmaps(gt_boxes: list, grid: BEVGrid, *, min_overlap: float, min_radius: int = 1,
                            device=None) -> torch.Tensor:
    """(B, 1, H, W) class-agnostic heatmaps for a list of (Mi, 9) box tensors."""
    maps = [draw_gaussian_heatmap(b.detach().cpu(), grid, min_overlap=min_overlap, min_radius=min_radius)
            for b in gt_boxes]
    out = torch.stack(maps)[:, None] if maps else torch.zeros((0, 1) + grid.shape)
    return out.to(device) if device is not None else out


def boxes_cell_masks(boxes: torch.Tensor, grid: BEVGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells whose centre lies inside a box (rotated footprint, borders included).

    Returns ``inside`` (H, W) bool and ``box_area`` (H, W) float32: the footprint area
    ``l * w`` (m^2) of the smallest box containing the cell (``inf`` outside all boxes).
    """
    centres = torch.as_tensor(grid.cell_centers(), dtype=torch.float64).reshape(-1, 2)
    area = torch.full((centres.shape[0],), math.inf, dtype=torch.float64)
    boxes = torch.as_tensor(boxes, dtype=torch.float64)
    if boxes.numel():
        b = boxes.reshape(-1, boxes.shape[-1])
        d = centres[None] - b[:, None, :2]  # (M, P, 2)
        c, s = torch.cos(b[:, 6])[:, None], torch.sin(b[:, 6])[:, None]
        u = c * d[..., 0] + s * d[..., 1]
        v = -s * d[..., 0] + c * d[..., 1]
        eps = 1e-9
        inside = (u.abs() <= b[:, 3:4] / 2 + eps) & (v.abs() <= b[:, 4:5] / 2 + eps)
        box_area = (b[:, 3] * b[:, 4])[:, None].expand_as(inside)
        area = torch.where(inside, box_area, torch.full_like(box_area, math.inf)).min(dim=0).values
    area = area.reshape(grid.shape)
    return torch.isfinite(area), area.float()


# Keypoint order: 4 corners (front-left, rear-left, rear-right, front-right), centre, then the
# 4 edge midpoints (front, left, rear, right); offsets in units of (l/2, w/2) in the box frame.
KEYPOINT_OFFSETS = torch.tensor(
    [[1, 1], [-1, 1], [-1, -1], [1, -1], [0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float64
)


def box_keypoints(boxes: torch.Tensor) -> torch.Tensor:
    """UniDistill's nine BEV keypoints: (M, 9) boxes -> (M, 9, 2) metric xy (order above)."""
    b = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, boxes.shape[-1] if boxes.numel() else 9)
    local = KEYPOINT_OFFSETS[None] * torch.stack([b[:, 3], b[:, 4]], dim=1)[:, None] / 2  # (M, 9, 2)
    c, s = torch.cos(b[:, 6])[:, None], torch.sin(b[:, 6])[:, None]
    x = b[:, None, 0] + c * local[..., 0] - s * local[..., 1]
    y = b[:, None, 1] + s * local[..., 0] + c * local[..., 1]
    return torch.stack([x, y], dim=-1)


def reg_channel_mask(num_channels: int, *, velocity: bool = True, like: torch.Tensor | None = None) -> torch.Tensor:
    """(1, R, 1, 1) 0/1 mask over a CenterHead regression map of ``R = 10 * tasks`` channels.

    The code per task is offset 2, z 1, log dims 3, sin/cos yaw 2, velocity 2
    (:mod:`kd3d.models.heads.targets`); ``velocity=False`` zeroes channels 8 and 9 of every task.
    """
    from kd3d.models.heads.targets import REG_CHANNELS

    if num_channels % REG_CHANNELS:
        raise ValueError(f"reg_channel_mask: {num_channels} channels is not a multiple of the "
                         f"{REG_CHANNELS}-channel box code")
    mask = torch.ones(num_channels)
    if not velocity:
        idx = torch.arange(num_channels) % REG_CHANNELS
        mask[idx >= REG_CHANNELS - 2] = 0.0
    mask = mask.view(1, -1, 1, 1)
    return mask.to(like) if like is not None else mask
