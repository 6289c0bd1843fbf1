"""Scene pictures: a LiDAR cloud with GT and predicted boxes, in BEV and in a 3D perspective view.

Rendered headless with numpy + PIL (no display, no GPU). Frames: every input is in the LiDAR
frame of :class:`~kd3d.structures.Boxes3D`. The BEV picture looks down the z axis with +x up
and +y left (a right-handed top view), so a KITTI/synthetic scene drives up the image.

Detections follow the model contract (``kd3d.models.base``): a dict with ``boxes`` (Boxes3D,
LiDAR frame), ``scores`` (K,) and ``labels`` (K,) class indices.
"""
from __future__ import annotations

import numpy as np
from PIL import ImageDraw

from kd3d.structures import Boxes3D
from kd3d.structures.geometry import rotation_z, transform_points
from kd3d.vis import _raster as R
from kd3d.vis.colors import GT_COLOR, PRED_COLOR, class_color, point_colors
from kd3d.vis.legend import box_legend, draw_legend


def _check_dets(preds, where: str):
    """Normalise a detection dict -> (Boxes3D, scores (K,), labels (K,)) or None."""
    if preds is None:
        return None
    if not isinstance(preds, dict) or "boxes" not in preds:
        raise ValueError(f"{where}: preds must be a dict with 'boxes', 'scores', 'labels', got {type(preds).__name__}")
    boxes = preds["boxes"] if isinstance(preds["boxes"], Boxes3D) else Boxes3D(np.asarray(preds["boxes"]))
    k = len(boxes)
    scores = np.asarray(preds.get("scores", np.ones(k)), dtype=np.float64).reshape(-1)
    labels = np.asarray(preds.get("labels", np.zeros(k)), dtype=np.int64).reshape(-1)
    if scores.shape != (k,) or labels.shape != (k,):
        raise ValueError(f"{where}: preds 'scores' and 'labels' must have shape ({k},), got {scores.shape}, {labels.shape}")
    return boxes, scores, labels


def _box_colors(labels, n, mode: str, source_color, class_names=None):
    if mode == "class" and labels is not None:
        return [class_color(l, class_names) for l in labels]
    if mode not in ("class", "source"):
        raise ValueError(f"box_colors must be 'class' or 'source', got {mode!r}")
    return [source_color] * n


def _draw_gt_and_preds(draw_boxes, gt_boxes, gt_labels, preds, where: str, *, box_colors, class_names,
                       score_thresh, show_scores, line_width) -> None:
    """GT boxes solid (one pixel wider), detections above ``score_thresh`` dashed with their
    scores; ``draw_boxes(boxes, colors, width, dash, texts)`` draws in the view's projection."""
    if gt_boxes is not None and len(gt_boxes):
        cols = _box_colors(gt_labels, len(gt_boxes), box_colors, GT_COLOR, class_names)
        draw_boxes(gt_boxes, cols, line_width + 1, None, None)
    dets = _check_dets(preds, where)
    if dets is not None:
        boxes, scores, labels = dets
        keep = scores >= score_thresh
        cols = _box_colors(labels[keep], int(keep.sum()), box_colors, PRED_COLOR, class_names)
        texts = None
        if show_scores:
            texts = [(f"{class_names[l]} " if class_names is not None else "") + f"{s:.2f}"
                     for s, l in zip(scores[keep], labels[keep])]
        draw_boxes(boxes[np.flatnonzero(keep)], cols, line_width, 6.0, texts)


def scene_legend(gt_boxes, gt_labels, preds, where: str, *, box_colors: str = "class", class_names=None,
                 score_thresh: float = 0.0):
    """The legend entries (:func:`kd3d.vis.legend.box_legend`) of the boxes a renderer draws:
    GT boxes and the detections with ``score >= score_thresh``."""
    has_gt = gt_boxes is not None and len(gt_boxes) > 0
    gt_l = np.asarray(gt_labels if gt_labels is not None and has_gt else [], dtype=np.int64)
    dets = _check_dets(preds, where)
    pred_l = np.zeros(0, np.int64) if dets is None else dets[2][dets[1] >= score_thresh]
    return box_legend(gt_l, pred_l, box_colors=box_colors, class_names=class_names, has_gt=has_gt,
                      has_preds=len(pred_l) > 0)


def bev_pixels(xy: np.ndarray, xy_range, resolution: float) -> np.ndarray:
    """(N, 2) metric LiDAR xy -> (N, 2) BEV pixels ``(u, v)``: +x up, +y left."""
    xmin, ymin, xmax, ymax = xy_range
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return np.stack([(ymax - xy[:, 1]) / resolution, (xmax - xy[:, 0]) / resolution], axis=1)


def render_bev(points: np.ndarray | None = None, *, colors: np.ndarray | None = None,
               gt_boxes: Boxes3D | None = None, gt_labels: np.ndarray | None = None, preds: dict | None = None,
               xy_range=(-51.2, -51.2, 51.2, 51.2), resolution: float = 0.1, point_radius: int = 0,
               score_thresh: float = 0.0, box_colors: str = "class", show_scores: bool = True,
               class_names=None, background=(0, 0, 0), rings: float | None = 10.0, line_width: int = 2,
               legend: bool = True) -> np.ndarray:
    """Top view of a scene. Returns (H, W, 3) uint8 with ``H = (xmax-xmin)/res``, ``W = (ymax-ymin)/res``.

    ``points`` (N, >=3) LiDAR frame, coloured by ``colors`` (N, 3) uint8 (default: height).
    GT boxes: solid outlines; predictions (``score >= score_thresh``): dashed outlines with the
    score (and class name when ``class_names`` is given). Every box gets a heading mark from its
    centre to the middle of its front edge. ``box_colors``: ``class`` (class palette) or
    ``source`` (GT green, predictions magenta). ``rings``: range circles every this many metres.
    ``legend``: the classes drawn and GT solid / prediction dashed, in the top-left corner.
    """
    xmin, ymin, xmax, ymax = xy_range
    if resolution <= 0 or xmax <= xmin or ymax <= ymin:
        raise ValueError(f"render_bev: bad xy_range {xy_range} or resolution {resolution}")
    h, w = int(round((xmax - xmin) / resolution)), int(round((ymax - ymin) / resolution))
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.asarray(background, dtype=np.uint8)
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    if rings:
        for r in np.arange(rings, max(abs(xmin), abs(xmax), abs(ymin), abs(ymax)) * 1.5, rings):
            (u0, v0), (u1, v1) = bev_pixels(np.array([[r, r], [-r, -r]]), xy_range, resolution)
            draw.ellipse([min(u0, u1), min(v0, v1), max(u0, u1), max(v0, v1)], outline=(60, 60, 60))
    img = np.asarray(pil).copy()
    if points is not None and len(points):
        points = np.asarray(points)
        if colors is None:
            colors = point_colors(points, "height")
        if len(colors) != len(points):
            raise ValueError(f"render_bev: colors has {len(colors)} rows for {len(points)} points")
        R.splat_points(img, bev_pixels(points[:, :2], xy_range, resolution), colors, point_radius, order=points[:, 2])
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    # ego marker: a small white triangle at the origin pointing along +x
    tri = bev_pixels(np.array([[1.5, 0.0], [-1.0, 0.9], [-1.0, -0.9]]), xy_range, resolution)
    draw.polygon([tuple(p) for p in tri], outline=(255, 255, 255))
    _draw_gt_and_preds(
        lambda boxes, cols, width, dash, texts: _draw_bev_boxes(draw, boxes, cols, xy_range, resolution, width,
                                                                dash, texts),
        gt_boxes, gt_labels, preds, "render_bev", box_colors=box_colors, class_names=class_names,
        score_thresh=score_thresh, show_scores=show_scores, line_width=line_width)
    img = np.asarray(pil).copy()
    if legend:
        img = draw_legend(img, scene_legend(gt_boxes, gt_labels, preds, "render_bev", box_colors=box_colors,
                                            class_names=class_names, score_thresh=score_thresh))
    return img


def _draw_bev_boxes(draw, boxes: Boxes3D, colors, xy_range, resolution, width, dash, texts):
    corners = boxes.bev_corners()  # (N, 4, 2)
    for i in range(len(boxes)):
        uv = bev_pixels(corners[i], xy_range, resolution)
        segs = np.stack([uv, np.roll(uv, -1, axis=0)], axis=1)
        R.draw_segments(draw, segs, colors[i], width, dash)
        centre = bev_pixels(boxes.center[i:i + 1, :2], xy_range, resolution)[0]
        front = (uv[0] + uv[3]) / 2  # corners 0 and 3 are front-left / front-right
        R.draw_segments(draw, np.array([[centre, front]]), colors[i], width)
        if texts is not None:
            R.draw_text(draw, (uv[:, 0].max() + 2, uv[:, 1].min()), texts[i], colors[i], size=11)


def perspective_camera(eye=(-18.0, 0.0, 12.0), target=(12.0, 0.0, 0.0), fov_deg: float = 70.0,
                       size=(1200, 800)):
    """A virtual pinhole camera in the LiDAR frame: returns ``(lidar2cam (4, 4), K (3, 3))``."""
    w, h = size
    f = (w / 2) / np.tan(np.radians(fov_deg) / 2)
    k = np.array([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1.0]])
    return R.look_at(eye, target), k


def render_perspective(points: np.ndarray | None = None, *, colors: np.ndarray | None = None,
                       gt_boxes: Boxes3D | None = None, gt_labels=None, preds: dict | None = None,
                       eye=(-18.0, 0.0, 12.0), target=(12.0, 0.0, 0.0), fov_deg: float = 70.0,
                       size=(1200, 800), score_thresh: float = 0.0, box_colors: str = "class",
                       show_scores: bool = True, class_names=None, background=(0, 0, 0),
                       max_range: float = 80.0, line_width: int = 2, legend: bool = True) -> np.ndarray:
    """A 3D perspective picture from a virtual camera at ``eye`` (LiDAR frame) looking at ``target``.

    Points (N, >=3) are depth-sorted (near painted last, 2 px splats within 15 m); boxes are
    drawn as 12 edges plus a cross on the front face (the heading), GT solid, predictions
    dashed with their scores; ``legend`` as in :func:`render_bev`. Returns (H, W, 3) uint8 with
    ``(W, H) = size``.
    """
    w, h = size
    l2c, k = perspective_camera(eye, target, fov_deg, size)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.asarray(background, dtype=np.uint8)
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    # ground grid every 10 m on z = -1.8 (about the road under a LiDAR mounted on a car roof)
    ticks = np.arange(-max_range, max_range + 1e-6, 10.0)
    segs = [[[t, -max_range, -1.8], [t, max_range, -1.8]] for t in ticks]
    segs += [[[-max_range, t, -1.8], [max_range, t, -1.8]] for t in ticks]
    _draw_3d_segments(draw, np.array(segs), l2c, k, (45, 45, 45), 1, None)
    img = np.asarray(pil).copy()
    if points is not None and len(points):
        points = np.asarray(points)
        if colors is None:
            colors = point_colors(points, "height")
        pc = transform_points(points[:, :3], l2c)
        ok = (pc[:, 2] > 0.5) & (np.linalg.norm(points[:, :2], axis=1) < max_range)
        uv = R.project_pinhole(pc[ok], k)
        near = pc[ok, 2] < 15.0
        R.splat_points(img, uv[~near], np.asarray(colors)[ok][~near], 0, order=-pc[ok, 2][~near])
        R.splat_points(img, uv[near], np.asarray(colors)[ok][near], 1, order=-pc[ok, 2][near])
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    _draw_gt_and_preds(
        lambda boxes, cols, width, dash, texts: _draw_3d_boxes(draw, boxes, cols, l2c, k, width, dash, texts),
        gt_boxes, gt_labels, preds, "render_perspective", box_colors=box_colors, class_names=class_names,
        score_thresh=score_thresh, show_scores=show_scores, line_width=line_width)
    img = np.asarray(pil).copy()
    if legend:
        img = draw_legend(img, scene_legend(gt_boxes, gt_labels, preds, "render_perspective", box_colors=box_colors,
                                            class_names=class_names, score_thresh=score_thresh))
    return img


def _draw_3d_segments(draw, segs_world: np.ndarray, l2c, k, color, width, dash):
    """(S, 2, 3) LiDAR-frame segments -> clipped at the near plane, projected and drawn."""
    if not len(segs_world):
        return
    a = transform_points(segs_world[:, 0], l2c)
    b = transform_points(segs_world[:, 1], l2c)
    a, b, keep = R.clip_segments_near(a, b, 0.2)
    uv = np.stack([R.project_pinhole(a[keep], k), R.project_pinhole(b[keep], k)], axis=1)
    R.draw_segments(draw, uv, color, width, dash)


def _draw_3d_boxes(draw, boxes: Boxes3D, colors, l2c, k, width, dash, texts):
    corners = boxes.corners()
    edges = np.concatenate([R.BOX_EDGES, R.FRONT_CROSS])
    for i in range(len(boxes)):
        segs = corners[i][edges]  # (14, 2, 3)
        _draw_3d_segments(draw, segs, l2c, k, colors[i], width, dash)
        if texts is not None:
            top = transform_points(corners[i, 4:5], l2c)
            if top[0, 2] > 0.2:
                u, v = R.project_pinhole(top, k)[0]
                R.draw_text(draw, (u, v - 14), texts[i], colors[i], size=11)


def ego_forward_yaw(lidar2ego: np.ndarray) -> float:
    """Heading (about +z, from +x) of the ego vehicle's forward axis expressed in the LiDAR frame."""
    fwd = np.asarray(lidar2ego, dtype=np.float64)[:3, :3].T @ np.array([1.0, 0.0, 0.0])
    return float(np.arctan2(fwd[1], fwd[0]))


def render_scene(sample, preds: dict | None = None, *, color_by: str = "height", view: str = "bev",
                 xy_range=(-51.2, -51.2, 51.2, 51.2), resolution: float = 0.1, key_frame_only: bool = False,
                 ego_up: bool = True, **kwargs) -> np.ndarray:
    """Render a :class:`~kd3d.structures.sample.Sample` with its GT boxes and optional detections.

    ``color_by``: see :func:`kd3d.vis.colors.point_colors` (``label`` uses ``points_label`` and
    only the key-frame points). ``view``: ``bev``, ``3d`` or ``both`` (side by side, same
    height). ``ego_up``: rotate the scene about the LiDAR z axis so the ego vehicle's forward
    axis (from ``sample.lidar2ego``) points up in BEV and away from the 3D camera; real nuScenes
    LIDAR_TOP has x to the right of the car, so without it the car would drive to the left.
    Extra keyword arguments go to the renderers (e.g. ``score_thresh``, ``class_names``).
    """
    points = np.asarray(sample.points)
    if key_frame_only or color_by == "label":
        points = points[: sample.num_key_points]
    colors = point_colors(points, color_by, labels=sample.points_label)
    gt_boxes = sample.gt_boxes
    if ego_up:
        # the (augmented) LiDAR frame -> ego: lidar2ego @ inv(bev_aug)
        angle = -ego_forward_yaw(np.asarray(sample.lidar2ego) @ np.linalg.inv(sample.bev_aug))
        if abs(angle) > 1e-9:
            rot = np.eye(4)
            rot[:3, :3] = rotation_z(angle)
            points = np.concatenate([points[:, :3] @ rot[:3, :3].T, points[:, 3:]], axis=1)
            gt_boxes = gt_boxes.transform(rot)
            if preds is not None:
                preds = {**preds, "boxes": _check_dets(preds, "render_scene")[0].transform(rot)}
    common = dict(colors=colors, gt_boxes=gt_boxes, gt_labels=sample.gt_labels, preds=preds, **kwargs)
    if view == "bev":
        return render_bev(points, xy_range=xy_range, resolution=resolution, **common)
    if view == "3d":
        return render_perspective(points, **common)
    if view == "both":
        bev = render_bev(points, xy_range=xy_range, resolution=resolution, **common)
        persp = render_perspective(points, size=(int(bev.shape[0] * 1.5), bev.shape[0]),
                                   **{**common, "legend": False})  # one legend, on the BEV half
        return np.concatenate([bev, persp], axis=1)
    raise ValueError(f"render_scene: view must be 'bev', '3d' or 'both', got {view!r}")
