"""The KITTI object format in one place: label/result lines, split files, calibration files and
the difficulty rule. Used by the loader (:mod:`kd3d.data.kitti`), the evaluator
(:mod:`kd3d.eval.kitti`, :mod:`kd3d.eval.kitti_io`) and the synthetic writers.

Label line (``label_2/<id>.txt``, one object per line, rectified camera-2 frame: x right, y down,
z forward)::

    type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry [score]

``x y z`` is the *bottom* centre of the box, ``h w l`` its size, ``ry`` the rotation about y,
``x1 y1 x2 y2`` the 2D box in pixels. Result files (``results/<id>.txt``) have exactly these 16
fields (the score is required); ground-truth files have 15 (a 16th is accepted and ignored).

Difficulty (official devkit, ``evaluate_object.cpp``): a GT box counts at a level when its 2D
height is *strictly* above ``MIN_HEIGHT`` and its occlusion / truncation are at most
``MAX_OCCLUSION`` / ``MAX_TRUNCATION``; a box of height <= the minimum is ignored at that level.
Detections are ignored when their 2D height is strictly *below* ``MIN_HEIGHT``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kd3d.structures.calib import KittiCalib

KITTI_SPLITS = ("train", "val", "trainval", "test")
DIFFICULTIES = ("easy", "moderate", "hard")
MIN_HEIGHT = (40.0, 25.0, 25.0)  # px; GT counts when height > MIN_HEIGHT (strict)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.3, 0.5)
LABEL_FIELDS = ("type", "truncated", "occluded", "alpha", "x1", "y1", "x2", "y2", "h", "w", "l",
                "x", "y", "z", "ry", "score")

__all__ = ["KITTI_SPLITS", "DIFFICULTIES", "MIN_HEIGHT", "MAX_OCCLUSION", "MAX_TRUNCATION", "LABEL_FIELDS",
           "KittiCalib", "gt_ignored", "kitti_difficulty", "read_label_file", "read_kitti_label",
           "format_label_line", "dontcare_line", "read_split_file", "read_split_ids", "write_split_file",
           "read_calib", "kitti_cam2lidar", "image_shape"]


# --------------------------------------------------------------------------- difficulty
def gt_ignored(level: int, bbox_height, occlusion, truncation) -> np.ndarray:
    """(N,) bool: GT boxes too hard for difficulty ``level`` (0 easy, 1 moderate, 2 hard):
    occlusion > max, truncation > max, or 2D height <= min (the devkit's ``cleanData``)."""
    h = np.asarray(bbox_height, np.float64)
    return ((np.asarray(occlusion) > MAX_OCCLUSION[level]) | (np.asarray(truncation, np.float64) > MAX_TRUNCATION[level])
            | (h <= MIN_HEIGHT[level]))


def kitti_difficulty(bbox_height, occlusion, truncation) -> np.ndarray:
    """(N,) int64: the easiest level (0 easy, 1 moderate, 2 hard) at which a GT box is not
    ignored (:func:`gt_ignored`), -1 when it is ignored at every level."""
    h = np.asarray(bbox_height, np.float64)
    out = np.full(h.shape, -1, np.int64)
    for level in (2, 1, 0):
        out[~gt_ignored(level, h, occlusion, truncation)] = level
    return out


# --------------------------------------------------------------------------- label lines
def read_label_file(path, *, result: bool = False) -> tuple[list[str], np.ndarray]:
    """Parse a label (``result=False``) or result file.

    Returns ``(types, values)``: ``types`` the N type strings as written, ``values`` (N, 15)
    float64 ``truncated occluded alpha x1 y1 x2 y2 h w l x y z ry score`` (score NaN in GT
    files). A line with the wrong number of fields (results: 16; labels: 15 or 16) or a
    non-numeric field raises ``ValueError('<file>:<line>: ...')``; a missing file
    ``FileNotFoundError``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI {'result' if result else 'label'} file not found: {path}")
    allowed = (16,) if result else (15, 16)
    types, rows = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        f = line.split()
        if not f:
            continue
        if len(f) not in allowed:
            names = " ".join(LABEL_FIELDS[:15]) + (" score" if result else " [score]")
            raise ValueError(f"{path}:{lineno}: expected {' or '.join(map(str, allowed))} fields ({names}), "
                             f"got {len(f)}")
        nums = []
        for k, v in enumerate(f[1:16], 1):
            try:
                nums.append(float(v))
            except ValueError:
                raise ValueError(f"{path}:{lineno}: field {k + 1} ({LABEL_FIELDS[k]}) is not a number: {v!r}") from None
        if len(nums) == 14:
            nums.append(np.nan)
        elif not result:
            nums[14] = np.nan  # a score column in a GT file is ignored
        types.append(f[0])
        rows.append(nums)
    return types, np.array(rows, np.float64).reshape(len(rows), 15)


def read_kitti_label(path) -> dict[str, np.ndarray]:
    """A ``label_2`` file as arrays: name (N,), truncation, occlusion (int64), alpha (N,), bbox
    (N, 4) ``x1 y1 x2 y2``, dimensions (N, 3) ``h w l``, location (N, 3) bottom centre in the
    rectified camera frame, rotation_y (N,), score (N,) (NaN in GT files)."""
    types, v = read_label_file(path)
    return {"name": np.array(types, dtype=str).reshape(len(types)), "truncation": v[:, 0],
            "occlusion": v[:, 1].astype(np.int64), "alpha": v[:, 2], "bbox": v[:, 3:7], "dimensions": v[:, 7:10],
            "location": v[:, 10:13], "rotation_y": v[:, 13], "score": v[:, 14]}


def format_label_line(typ: str, truncation, occlusion: int, alpha: float, bbox, dims, loc, ry: float,
                      score: float | None = None, *, digits: int = 2, score_digits: int = 4) -> str:
    """One label/result line without newline. ``bbox`` x1 y1 x2 y2 (always 2 decimals); ``dims``
    h w l, ``loc`` bottom centre x y z (camera frame), ``alpha`` and ``ry`` with ``digits``
    decimals; ``truncation`` None writes ``-1`` (results); ``score`` None omits the column."""
    d = digits
    trunc = "-1" if truncation is None else f"{float(truncation):.2f}"
    x1, y1, x2, y2 = (float(v) for v in bbox)
    h, w, l = (float(v) for v in dims)
    x, y, z = (float(v) for v in loc)
    line = (f"{typ} {trunc} {int(occlusion):d} {float(alpha):.{d}f} {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
            f"{h:.{d}f} {w:.{d}f} {l:.{d}f} {x:.{d}f} {y:.{d}f} {z:.{d}f} {float(ry):.{d}f}")
    return line if score is None else f"{line} {float(score):.{score_digits}f}"


def dontcare_line(bbox) -> str:
    """A DontCare region (only the 2D box is meaningful; the devkit's sentinel values elsewhere)."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    return f"DontCare -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} -1 -1 -1 -1000 -1000 -1000 -10"


# --------------------------------------------------------------------------- split files
def read_split_file(path) -> list[str]:
    """Frame ids of an ``ImageSets/<split>.txt`` file (one per line, blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"KITTI split file not found: {path}")
    ids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not ids:
        raise ValueError(f"{path}: split file lists no frames")
    return ids


def read_split_ids(root, split: str) -> list[str]:
    """Frame ids of split ``split`` (one of :data:`KITTI_SPLITS`) under dataset ``root``."""
    if split not in KITTI_SPLITS:
        raise ValueError(f"unknown KITTI split {split!r}; expected one of {KITTI_SPLITS}")
    return read_split_file(Path(root) / "ImageSets" / f"{split}.txt")


def write_split_file(path, ids) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{i}\n" for i in ids))
    return path


# --------------------------------------------------------------------------- calibration, images
def read_calib(folder, frame_id: str) -> KittiCalib:
    """``<folder>/<frame_id>.txt`` (a ``calib`` folder) as a :class:`KittiCalib`."""
    return KittiCalib.from_file(Path(folder) / f"{frame_id}.txt")


def kitti_cam2lidar(calib: KittiCalib) -> tuple[np.ndarray, np.ndarray]:
    """(K (3, 3), cam2lidar (4, 4)) of camera 2: ``K @ inv(cam2lidar) @ p_velo`` equals the
    devkit's ``P2 @ R0_rect @ Tr_velo_to_cam @ p_velo`` (P2's baseline folded into the extrinsics)."""
    k = calib.P2[:, :3].copy()
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(k, calib.P2[:, 3])
    lidar2cam = shift @ calib.velo_to_rect
    return k, np.linalg.inv(lidar2cam)


def image_shape(path) -> tuple[int, int] | None:
    """(H, W) of an image file without decoding it; None when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    from PIL import Image

    with Image.open(path) as im:
        return (im.height, im.width)
