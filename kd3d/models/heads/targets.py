"""CenterPoint targets on a :class:`~kd3d.structures.BEVGrid`: Gaussian heatmaps and box codes.

Box code (``REG_CHANNELS`` = 10 channels per cell, the ``reg`` feature layout):

====  =========  ===============================================================
 ch   name       meaning
====  =========  ===============================================================
 0-1  offset     sub-cell centre offset ``(col - j, row - i)`` in [0, 1) cells
 2    z          box centre z in metres (LiDAR frame)
 3-5  dims       ``log(l), log(w), log(h)`` (metres)
 6-7  rot        ``sin(yaw), cos(yaw)``
 8-9  vel        ``vx, vy`` m/s (NaN in the target when unknown -> masked in the loss)
====  =========  ===============================================================

A box's cell is ``(i, j) = floor(grid.xy_to_cell(centre))`` (row i along y, column j along x),
so decoding ``x = (j + off_x) * dx + xmin`` inverts encoding exactly.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from kd3d.structures.bev import BEVGrid

REG_CHANNELS = 10
REG_SLICES = {"offset": slice(0, 2), "z": slice(2, 3), "dims": slice(3, 6), "rot": slice(6, 8), "vel": slice(8, 10)}


def gaussian_radius(length, width, min_overlap: float = 0.1):
    """CenterNet radius (in cells) for a box of ``length x width`` cells.

    The largest corner displacement r such that a box shifted by r still has IoU >=
    ``min_overlap`` with the original, taking the smallest of the three cases (both corners
    moved inwards, outwards, one each). Vectorised over numpy / torch inputs.
    """
    lib = torch if isinstance(length, torch.Tensor) else np
    h, w, o = length, width, min_overlap
    b1 = h + w
    c1 = w * h * (1 - o) / (1 + o)
    r1 = (b1 + lib.sqrt(b1 ** 2 - 4 * c1)) / 2
    b2 = 2 * (h + w)
    c2 = (1 - o) * w * h
    r2 = (b2 + lib.sqrt(b2 ** 2 - 16 * c2)) / 2
    a3 = 4 * o
    b3 = -2 * o * (h + w)
    c3 = (o - 1) * w * h
    r3 = (b3 + lib.sqrt(b3 ** 2 - 4 * a3 * c3)) / 2
    return lib.minimum(lib.minimum(r1, r2), r3)


def gaussian_kernel(radius: int, *, device=None, dtype=torch.float32) -> torch.Tensor:
    """(2r+1, 2r+1) Gaussian with sigma = (2r+1)/6 and value exactly 1 at the centre."""
    d = 2 * radius + 1
    sigma = d / 6.0
    ax = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    g = torch.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * sigma * sigma))
    g[g < torch.finfo(dtype).eps * g.max()] = 0
    return g


def draw_gaussian(heatmap: torch.Tensor, col: int, row: int, radius: int) -> torch.Tensor:
    """Draw (element-wise max) a Gaussian of ``radius`` cells centred on cell (row, col).

    heatmap: (H, W), modified in place and returned. Cells outside the map are clipped.
    """
    H, W = heatmap.shape
    g = gaussian_kernel(radius, device=heatmap.device, dtype=heatmap.dtype)
    left, right = min(col, radius), min(W - col, radius + 1)
    top, bottom = min(row, radius), min(H - row, radius + 1)
    if left + right <= 0 or top + bottom <= 0:
        return heatmap
    region = heatmap[row - top:row + bottom, col - left:col + right]
    patch = g[radius - top:radius + bottom, radius - left:radius + right]
    torch.maximum(region, patch, out=region)
    return heatmap


def encode_boxes(boxes: torch.Tensor, grid: BEVGrid):
    """Boxes (M, 9) Boxes3D layout -> (cells (M, 2) int64 ``(col, row)``, codes (M, 10) float32,
    inside (M,) bool: centre inside the grid)."""
    if boxes.ndim != 2 or boxes.shape[1] < 7:
        raise ValueError(f"encode_boxes: boxes must be (M, 7+) Boxes3D layout, got {tuple(boxes.shape)}")
    b = boxes.double()
    colf = (b[:, 0] - grid.xmin) / grid.dx
    rowf = (b[:, 1] - grid.ymin) / grid.dy
    col = torch.floor(colf)
    row = torch.floor(rowf)
    inside = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny)
    if b.shape[1] >= 9:
        vel = b[:, 7:9]
    else:
        vel = torch.full_like(b[:, :2], float("nan"))
    codes = torch.stack(
        [colf - col, rowf - row, b[:, 2],
         torch.log(b[:, 3].clamp(min=1e-3)), torch.log(b[:, 4].clamp(min=1e-3)), torch.log(b[:, 5].clamp(min=1e-3)),
         torch.sin(b[:, 6]), torch.cos(b[:, 6]), vel[:, 0], vel[:, 1]], dim=1,
    )
    cells = torch.stack([col, row], dim=1).long()
    return cells, codes.float(), inside


def decode_boxes(cells: torch.Tensor, codes: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`: cells (M, 2) ``(col, row)`` + codes (M, 10) -> (M, 9)
    boxes (float32, LiDAR frame, Boxes3D layout)."""
    c = codes.float()
    x = (cells[:, 0].to(c.dtype) + c[:, 0]) * grid.dx + grid.xmin
    y = (cells[:, 1].to(c.dtype) + c[:, 1]) * grid.dy + grid.ymin
    dims = torch.exp(c[:, 3:6].clamp(max=math.log(100.0)))
    yaw = torch.atan2(c[:, 6], c[:, 7])
    return torch.cat([x[:, None], y[:, None], c[:, 2:3], dims, yaw[:, None], c[:, 8:10]], dim=1)


@torch.no_grad()
def build_task_targets(gt_boxes: list[torch.Tensor], gt_labels: list[torch.Tensor], task_class_ids: list[int],
                       grid: BEVGrid, *, min_overlap: float = 0.1, min_radius: int = 2,
                       gt_attrs: list[torch.Tensor] | None = None):
    """Targets for one task (class group) over a batch.

    gt_boxes: list[B] of (Mi, 9) LiDAR-frame boxes; gt_labels: list[B] of (Mi,) class indices
    (into the head's ``class_names``); task_class_ids: the global class indices of this task,
    in channel order.

    Returns a dict: ``heatmap`` (B, n_task, H, W) float32 in [0, 1]; ``ind`` (B, M) int64 flat
    cell index ``row * W + col``; ``mask`` (B, M) bool; ``codes`` (B, M, 10) float32 (NaN
    velocities replaced by 0); ``code_mask`` (B, M, 10) bool (False for padding and unknown
    velocity); ``attr`` (B, M) int64 attribute index (-1 for none / padding; all -1 when
    ``gt_attrs`` is None). M = max boxes of this task in any sample (at least 1).
    """
    B = len(gt_boxes)
    H, W = grid.shape
    device = gt_boxes[0].device if B else torch.device("cpu")
    n_task = len(task_class_ids)
    lut = {c: k for k, c in enumerate(task_class_ids)}
    heat = torch.zeros((B, n_task, H, W), dtype=torch.float32, device=device)
    per_sample = []
    for b in range(B):
        boxes, labels = gt_boxes[b], gt_labels[b]
        if boxes.shape[0] != labels.shape[0]:
            raise ValueError(f"targets: sample {b}: gt_boxes {tuple(boxes.shape)} and gt_labels "
                             f"{tuple(labels.shape)} disagree")
        sel = torch.zeros(labels.shape[0], dtype=torch.bool, device=labels.device)
        for c in task_class_ids:
            sel |= labels == c
        attrs = gt_attrs[b].to(labels.device) if gt_attrs is not None else torch.full_like(labels, -1)
        boxes, labels, attrs = boxes[sel], labels[sel], attrs[sel]
        cells, codes, inside = encode_boxes(boxes, grid)
        cells, codes, labels, boxes = cells[inside], codes[inside], labels[inside], boxes[inside]
        attrs = attrs[inside]
        if boxes.shape[0]:
            radius = gaussian_radius(boxes[:, 3].double() / grid.dx, boxes[:, 4].double() / grid.dy, min_overlap)
            radius = torch.clamp(torch.floor(radius), min=min_radius).long().tolist()
            for k, (cc, rr) in enumerate(cells.tolist()):
                draw_gaussian(heat[b, lut[int(labels[k])]], cc, rr, radius[k])
        per_sample.append((cells[:, 1] * W + cells[:, 0], codes, attrs))
    M = max([1] + [p[0].shape[0] for p in per_sample])
    ind = torch.zeros((B, M), dtype=torch.int64, device=device)
    mask = torch.zeros((B, M), dtype=torch.bool, device=device)
    codes_t = torch.zeros((B, M, REG_CHANNELS), dtype=torch.float32, device=device)
    code_mask = torch.zeros((B, M, REG_CHANNELS), dtype=torch.bool, device=device)
    attr = torch.full((B, M), -1, dtype=torch.int64, device=device)
    for b, (ind_b, codes_b, attr_b) in enumerate(per_sample):
        m = ind_b.shape[0]
        ind[b, :m] = ind_b
        mask[b, :m] = True
        finite = torch.isfinite(codes_b)
        codes_t[b, :m] = torch.where(finite, codes_b, torch.zeros_like(codes_b))
        code_mask[b, :m] = finite
        attr[b, :m] = attr_b.to(device)
    return {"heatmap": heat, "ind": ind, "mask": mask, "codes": codes_t, "code_mask": code_mask, "attr": attr}
