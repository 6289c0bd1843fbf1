"""Camera pictures: the sample's images in a grid with projected LiDAR points and 3D boxes.

Projection chain for a LiDAR-frame point ``p`` into camera ``c`` (the Sample conventions):
``p_cam = inv(cam2lidar[c]) @ p`` (camera frame: x right, y down, z forward),
``[u v 1] ~ img_aug[c] @ K[c] @ p_cam``; the images in a Sample are already augmented, so the
projected pixels land on them directly. Points with ``z_cam <= near`` are dropped; box edges
are clipped at the near plane before projection.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from kd3d.structures import Boxes3D
from kd3d.structures.geometry import transform_points
from kd3d.vis import _raster as R
from kd3d.vis.bev import _box_colors, _check_dets, scene_legend
from kd3d.vis.colors import GT_COLOR, PRED_COLOR, colormap
from kd3d.vis.legend import draw_legend

# nuScenes grid layout: fronts on top (left, centre, right), backs below (left, centre, right).
NUSC_GRID = (("CAM_FRONT_LEFT", "CAM_FRONT", "CAM_FRONT_RIGHT"), ("CAM_BACK_LEFT", "CAM_BACK", "CAM_BACK_RIGHT"))


def _image_matrix(intrinsics: np.ndarray, img_aug: np.ndarray | None) -> np.ndarray:
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"camera intrinsics must be (3, 3), got {k.shape}")
    if img_aug is None:
        return k
    a = np.asarray(img_aug, dtype=np.float64)
    if a.shape != (3, 3):
        raise ValueError(f"img_aug must be (3, 3), got {a.shape}")
    return a @ k


def project_points(points: np.ndarray, cam2lidar: np.ndarray, intrinsics: np.ndarray,
                   img_aug: np.ndarray | None = None, near: float = 0.5):
    """Project LiDAR points into one camera.

    ``points`` (N, >=3) LiDAR frame; ``cam2lidar`` (4, 4); ``intrinsics`` (3, 3); ``img_aug``
    (3, 3) or None. Returns ``(uv (N, 2) float64 pixels, depth (N,) metres along the optical
    axis, valid (N,) bool: depth > near)``. ``uv`` of invalid points is meaningless.
    """
    m = np.asarray(cam2lidar, dtype=np.float64)
    if m.shape != (4, 4):
        raise ValueError(f"cam2lidar must be (4, 4), got {m.shape}")
    pc = transform_points(np.asarray(points)[:, :3], np.linalg.inv(m))
    depth = pc[:, 2]
    valid = depth > near
    uv = np.zeros((len(pc), 2))
    uv[valid] = R.project_pinhole(pc[valid], _image_matrix(intrinsics, img_aug))
    return uv, depth, valid


def project_box_edges(boxes: Boxes3D, cam2lidar: np.ndarray, intrinsics: np.ndarray,
                      img_aug: np.ndarray | None = None, near: float = 0.2) -> list[np.ndarray]:
    """Per box, its visible edges in pixels: a list of (S_i, 2, 2) arrays (S_i <= 14: the 12
    edges and the front-face cross), clipped at the near plane; empty for boxes behind the camera."""
    l2c = np.linalg.inv(np.asarray(cam2lidar, dtype=np.float64))
    kk = _image_matrix(intrinsics, img_aug)
    edges = np.concatenate([R.BOX_EDGES, R.FRONT_CROSS])
    out = []
    for corners in boxes.corners():
        c = transform_points(corners, l2c)
        a, b, keep = R.clip_segments_near(c[edges[:, 0]], c[edges[:, 1]], near)
        out.append(np.stack([R.project_pinhole(a[keep], kk), R.project_pinhole(b[keep], kk)], axis=1))
    return out


def render_camera(image: np.ndarray, points: np.ndarray | None, cam2lidar, intrinsics, img_aug=None, *,
                  gt_boxes: Boxes3D | None = None, gt_labels=None, preds: dict | None = None,
                  score_thresh: float = 0.0, box_colors: str = "class", depth_max: float = 60.0,
                  point_radius: int | None = None, line_width: int | None = None, class_names=None,
                  legend: bool = True) -> np.ndarray:
    """One camera image (H, W, 3) uint8 with LiDAR points coloured by depth (``jet_r`` over
    [0, depth_max]: near red, far blue; far points painted first) and boxes (GT solid,
    predictions dashed). ``point_radius`` / ``line_width`` default to the image size (1 / 2 px
    from 800 px wide, 0 / 1 below). ``class_names`` picks box colours by class name (see
    :func:`kd3d.vis.colors.class_color`). ``legend``: the classes drawn and GT solid / prediction
    dashed, in the top-right corner. Returns a new (H, W, 3) uint8 array."""
    img = np.array(image, dtype=np.uint8, copy=True)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"render_camera: image must be (H, W, 3), got {img.shape}")
    h, w = img.shape[:2]
    if point_radius is None:
        point_radius = 1 if w >= 800 else 0
    if line_width is None:
        line_width = 2 if w >= 800 else 1
    if points is not None and len(points):
        uv, depth, valid = project_points(points, cam2lidar, intrinsics, img_aug)
        inside = valid & (uv[:, 0] >= 0) & (uv[:, 0] < w) & (uv[:, 1] >= 0) & (uv[:, 1] < h)
        cols = colormap(depth[inside], 0.0, depth_max, cmap="jet_r")
        R.splat_points(img, uv[inside], cols, point_radius, order=-depth[inside])
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    if gt_boxes is not None and len(gt_boxes):
        cols = _box_colors(gt_labels, len(gt_boxes), box_colors, GT_COLOR, class_names)
        for segs, col in zip(project_box_edges(gt_boxes, cam2lidar, intrinsics, img_aug), cols):
            R.draw_segments(draw, segs, col, line_width + 1)
    dets = _check_dets(preds, "render_camera")
    if dets is not None:
        boxes, scores, labels = dets
        keep = np.flatnonzero(scores >= score_thresh)
        cols = _box_colors(labels[keep], len(keep), box_colors, PRED_COLOR, class_names)
        for segs, col in zip(project_box_edges(boxes[keep], cam2lidar, intrinsics, img_aug), cols):
            R.draw_segments(draw, segs, col, line_width, dash=8.0)
    img = np.asarray(pil).copy()
    if legend:
        img = draw_legend(img, scene_legend(gt_boxes, gt_labels, preds, "render_camera", box_colors=box_colors,
                                            class_names=class_names, score_thresh=score_thresh), corner="top-right")
    return img


def _grid_order(cam_names: list[str]) -> list[list[int]]:
    """Rows of camera indices: the nuScenes 2 x 3 layout when all six names are present,
    otherwise rows of three in the given order."""
    if all(n in cam_names for row in NUSC_GRID for n in row):
        return [[cam_names.index(n) for n in row] for row in NUSC_GRID]
    idx = list(range(len(cam_names)))
    return [idx[i:i + 3] for i in range(0, len(idx), 3)]


def render_cameras(sample, preds: dict | None = None, *, tile_width: int | None = 480, key_frame_only: bool = True,
                   labels: bool = True, legend: bool = True, **kwargs) -> np.ndarray:
    """All cameras of a :class:`~kd3d.structures.sample.Sample` in a grid (nuScenes: 2 x 3, fronts on
    top; other rigs: rows of up to three) with projected points and GT/predicted boxes. Each tile
    is resized to ``tile_width`` (None: native size) after drawing. Returns (rows * h, cols * w, 3) uint8.

    ``key_frame_only``: project only ``points[:num_key_points]`` (sweeps smear under ego motion).
    ``legend``: one legend of the drawn classes and GT / prediction line styles, in the grid's
    top-right corner. Extra keyword arguments go to :func:`render_camera`.
    """
    if sample.images is None or not len(sample.cam_names):
        raise ValueError(f"sample {sample.token}: has no camera images (images is None); load it with cameras")
    points = sample.points[: sample.num_key_points] if key_frame_only else sample.points
    tiles = []
    for c in range(len(sample.cam_names)):
        tile = render_camera(sample.images[c], points, sample.cam2lidar[c], sample.cam_intrinsics[c],
                             sample.img_aug[c], gt_boxes=sample.gt_boxes, gt_labels=sample.gt_labels,
                             preds=preds, legend=False, **kwargs)
        pil = R.to_image(tile)
        if tile_width is not None and tile_width != pil.width:
            pil = pil.resize((tile_width, max(1, round(pil.height * tile_width / pil.width))), Image.BILINEAR)
        if labels:
            R.draw_text(ImageDraw.Draw(pil), (4, 4), sample.cam_names[c], (255, 255, 255), size=12)
        tiles.append(np.asarray(pil))
    th, tw = tiles[0].shape[:2]
    rows = _grid_order(list(sample.cam_names))
    ncols = max(len(r) for r in rows)
    grid = np.zeros((len(rows) * th, ncols * tw, 3), dtype=np.uint8)
    for r, row in enumerate(rows):
        for j, c in enumerate(row):
            t = tiles[c][:th, :tw]
            grid[r * th:r * th + t.shape[0], j * tw:j * tw + t.shape[1]] = t
    if legend:
        opts = {k: kwargs[k] for k in ("box_colors", "class_names", "score_thresh") if k in kwargs}
        grid = draw_legend(grid, scene_legend(sample.gt_boxes, sample.gt_labels, preds, "render_cameras", **opts),
                           corner="top-right")
    return grid
