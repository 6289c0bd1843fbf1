"""open3d export and viewing: coloured point clouds (PLY/PCD) and box wireframes (LineSets).

open3d is optional (``pip install 'kd3d[vis]'``) and imported lazily. Files are written with
open3d's own IO (``write_point_cloud``, ``write_line_set``) so any open3d / MeshLab /
CloudCompare reads them back. Everything is in the LiDAR frame.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from kd3d.structures import Boxes3D
from kd3d.vis._raster import BOX_EDGES
from kd3d.vis.bev import _check_dets
from kd3d.vis.colors import class_color, point_colors

# Box wireframe: the 12 edges plus a heading segment from the bottom centre (corner 8) to the
# middle of the front bottom edge (corner 9).
LINESET_EDGES = np.concatenate([BOX_EDGES, [[8, 9]]])
POINT_SUFFIXES = (".ply", ".pcd", ".xyz", ".xyzrgb", ".pts")


def _o3d():
    try:
        import open3d
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("kd3d.vis.o3d needs open3d: pip install 'open3d>=0.18' 'pandas<3' "
                          "(on Debian also apt-get install libusb-1.0-0)") from exc
    return open3d


def point_cloud(points: np.ndarray, colors: np.ndarray | None = None):
    """(N, >=3) LiDAR points [+ (N, 3) uint8 colours] -> ``open3d.geometry.PointCloud``."""
    o3d = _o3d()
    p = np.asarray(points)
    if p.ndim != 2 or p.shape[1] < 3:
        raise ValueError(f"point_cloud: points must be (N, >=3), got {p.shape}")
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(p[:, :3].astype(np.float64)))
    if colors is not None:
        c = np.asarray(colors)
        if c.shape != (len(p), 3):
            raise ValueError(f"point_cloud: colors must be ({len(p)}, 3), got {c.shape}")
        pc.colors = o3d.utility.Vector3dVector(c.astype(np.float64) / 255.0)
    return pc


def box_lineset(boxes: Boxes3D, colors) -> "object":
    """All boxes in one ``open3d.geometry.LineSet``: per box 10 vertices (8 corners, bottom
    centre, front-bottom midpoint) and 13 lines (12 edges + heading). ``colors``: (N, 3) uint8
    or one RGB triple."""
    o3d = _o3d()
    n = len(boxes)
    cols = np.asarray(colors, dtype=np.float64).reshape(-1, 3)
    if len(cols) == 1:
        cols = np.repeat(cols, n, axis=0)
    if len(cols) != n:
        raise ValueError(f"box_lineset: {len(cols)} colours for {n} boxes")
    corners = boxes.corners()  # (N, 8, 3)
    bottom = corners[:, :4].mean(1, keepdims=True)
    front = corners[:, [0, 3]].mean(1, keepdims=True)
    verts = np.concatenate([corners, bottom, front], axis=1).reshape(-1, 3)
    lines = (LINESET_EDGES[None] + 10 * np.arange(n)[:, None, None]).reshape(-1, 2)
    ls = o3d.geometry.LineSet(o3d.utility.Vector3dVector(verts), o3d.utility.Vector2iVector(lines.astype(np.int32)))
    ls.colors = o3d.utility.Vector3dVector(np.repeat(cols / 255.0, len(LINESET_EDGES), axis=0))
    return ls


def scene_geometries(sample, preds: dict | None = None, *, color_by: str = "height", score_thresh: float = 0.0,
                     class_names=None):
    """``(point_cloud, gt_lineset, pred_lineset or None)`` for a Sample (class colours; by
    name when ``class_names`` is given, see :func:`kd3d.vis.colors.class_color`)."""
    pts = np.asarray(sample.points)
    if color_by == "label":
        pts = pts[: sample.num_key_points]
    pc = point_cloud(pts, point_colors(pts, color_by, labels=sample.points_label))
    gt = box_lineset(sample.gt_boxes, [class_color(l, class_names) for l in sample.gt_labels] or [(0, 200, 0)])
    pred = None
    dets = _check_dets(preds, "export_scene")
    if dets is not None:
        boxes, scores, labels = dets
        keep = np.flatnonzero(scores >= score_thresh)
        pred = box_lineset(boxes[keep], [class_color(l, class_names) for l in labels[keep]] or [(230, 0, 230)])
    return pc, gt, pred


def export_scene(sample, out, preds: dict | None = None, *, color_by: str = "height",
                 score_thresh: float = 0.0, class_names=None) -> dict[str, str]:
    """Write the coloured cloud to ``out`` (``.ply``/``.pcd``/...), the GT boxes to
    ``<stem>_gt_boxes.ply`` and the predictions to ``<stem>_pred_boxes.ply`` (LineSets) next to
    it. Returns ``{"points": ..., "gt_boxes": ..., ["pred_boxes": ...]}`` paths."""
    o3d = _o3d()
    out = Path(out)
    if out.suffix.lower() not in POINT_SUFFIXES:
        raise ValueError(f"export_scene: {out}: the extension must be one of {POINT_SUFFIXES}")
    out.parent.mkdir(parents=True, exist_ok=True)
    pc, gt, pred = scene_geometries(sample, preds, color_by=color_by, score_thresh=score_thresh,
                                    class_names=class_names)
    files = {"points": str(out), "gt_boxes": str(out.with_name(out.stem + "_gt_boxes.ply"))}
    if not o3d.io.write_point_cloud(files["points"], pc):
        raise OSError(f"open3d could not write {files['points']}")
    if not o3d.io.write_line_set(files["gt_boxes"], gt):
        raise OSError(f"open3d could not write {files['gt_boxes']}")
    if pred is not None:
        files["pred_boxes"] = str(out.with_name(out.stem + "_pred_boxes.ply"))
        if not o3d.io.write_line_set(files["pred_boxes"], pred):
            raise OSError(f"open3d could not write {files['pred_boxes']}")
    return files


def display_available() -> bool:
    """True when a window can open: an X11/Wayland display on Linux; always on macOS/Windows."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def show_scene(sample, preds: dict | None = None, *, color_by: str = "height", score_thresh: float = 0.0,
               class_names=None) -> None:
    """Open an interactive open3d window with the cloud and boxes.

    Raises RuntimeError with a hint when no display exists (use ``kd3d vis html`` or
    ``kd3d vis export`` on headless machines)."""
    if not display_available():
        raise RuntimeError("no display (DISPLAY/WAYLAND_DISPLAY unset): an open3d window cannot open here; "
                           "use `kd3d vis html` (browser viewer) or `kd3d vis export` (PLY/PCD) instead")
    o3d = _o3d()
    geoms = [g for g in scene_geometries(sample, preds, color_by=color_by, score_thresh=score_thresh,
                                         class_names=class_names) if g is not None]
    geoms.append(o3d.geometry.TriangleMesh.create_coordinate_frame(size=2.0))
    o3d.visualization.draw_geometries(geoms, window_name=f"kd3d {sample.token}")
