"""nuScenes detection submission I/O: kd3d detections <-> the official results JSON.

The official format is ``{"meta": {...}, "results": {sample_token: [box, ...]}}`` with, per box,
``sample_token``, ``translation`` (3, global frame, box centre), ``size`` (3, ``w l h``),
``rotation`` (4, quaternion ``w x y z``, global), ``velocity`` (2, global vx vy),
``detection_name``, ``detection_score`` and ``attribute_name`` ('' for none).

In memory kd3d holds many samples' boxes as one :class:`NuscBoxes` (rows ordered sample by
sample, in the order of the results dict; that order is the devkit's tie order).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_CLASS_ATTRIBUTES, NUSC_DEFAULT_ATTRIBUTE, NUSC_DET_CLASSES

MAX_BOXES_PER_SAMPLE = 500
DEFAULT_META = {"use_camera": False, "use_lidar": True, "use_radar": False, "use_map": False, "use_external": False}
_CLASS_INDEX = {c: i for i, c in enumerate(NUSC_DET_CLASSES)}
_ATTR_INDEX = {a: i for i, a in enumerate(NUSC_ATTRIBUTES)}
_BOX_KEYS = ("translation", "size", "rotation", "velocity", "detection_name", "detection_score", "attribute_name")


@dataclass
class NuscBoxes:
    """Boxes of many samples in the nuScenes global frame, one row per box.

    sample_tokens: the S samples; rows point into it with ``sample_idx`` (N,) int64.
    translation (N, 3) centre; size (N, 3) ``w l h``; rotation (N, 4) quaternion ``w x y z``;
    velocity (N, 2) (NaN allowed for GT); label (N,) index into ``NUSC_DET_CLASSES``;
    score (N,) (GT: -1); attr (N,) index into ``NUSC_ATTRIBUTES``, -1 for '';
    num_pts (N,) lidar + radar points in the box (-1 unknown, predictions).
    Row order matters: it is the devkit's order (results-dict order, then in-sample order).
    """

    sample_tokens: list[str]
    sample_idx: np.ndarray
    translation: np.ndarray
    size: np.ndarray
    rotation: np.ndarray
    velocity: np.ndarray
    label: np.ndarray
    score: np.ndarray
    attr: np.ndarray
    num_pts: np.ndarray = field(default=None)

    def __post_init__(self):
        n = len(self.sample_idx)
        self.sample_idx = np.asarray(self.sample_idx, dtype=np.int64).reshape(n)
        self.translation = np.asarray(self.translation, dtype=np.float64).reshape(n, 3)
        self.size = np.asarray(self.size, dtype=np.float64).reshape(n, 3)
        self.rotation = np.asarray(self.rotation, dtype=np.float64).reshape(n, 4)
        self.velocity = np.asarray(self.velocity, dtype=np.float64).reshape(n, 2)
        self.label = np.asarray(self.label, dtype=np.int64).reshape(n)
        self.score = np.asarray(self.score, dtype=np.float64).reshape(n)
        self.attr = np.asarray(self.attr, dtype=np.int64).reshape(n)
        self.num_pts = np.full(n, -1, np.int64) if self.num_pts is None else np.asarray(self.num_pts, np.int64).reshape(n)
        self.sample_tokens = list(self.sample_tokens)

    def __len__(self) -> int:
        return len(self.sample_idx)

    @property
    def yaw(self) -> np.ndarray:
        """(N,) heading in the global xy plane: angle of the box x axis (devkit ``quaternion_yaw``)."""
        return quaternion_yaw(self.rotation)

    def select(self, mask: np.ndarray) -> "NuscBoxes":
        """Rows where ``mask`` (N,) is true (order kept, same sample list)."""
        m = np.asarray(mask)
        return NuscBoxes(self.sample_tokens, self.sample_idx[m], self.translation[m], self.size[m],
                         self.rotation[m], self.velocity[m], self.label[m], self.score[m], self.attr[m],
                         self.num_pts[m])

    @classmethod
    def empty(cls, sample_tokens) -> "NuscBoxes":
        z = np.zeros(0)
        return cls(sample_tokens, z, z, z, z, z, z, z, z, z)


def quaternion_yaw(rotation: np.ndarray) -> np.ndarray:
    """(N, 4) quaternions ``w x y z`` -> (N,) yaw: angle of the rotated x axis in the xy plane."""
    q = np.asarray(rotation, dtype=np.float64)
    q = q / np.sqrt((q * q).sum(axis=1, keepdims=True))
    w, x, y, z = q.T
    return np.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))


def boxes_from_kd3d(sample_tokens, boxes, scores, labels, lidar2ego, ego2global, attrs=None) -> NuscBoxes:
    """Per-sample kd3d detections -> :class:`NuscBoxes` (global frame).

    ``boxes[i]``: :class:`~kd3d.structures.boxes.Boxes3D` in sample i's LiDAR frame;
    ``scores[i]`` (n_i,); ``labels[i]`` (n_i,) indices into ``NUSC_DET_CLASSES``;
    ``attrs[i]`` (n_i,) indices into ``NUSC_ATTRIBUTES`` (-1: the class default, see
    ``NUSC_DEFAULT_ATTRIBUTE``) or None for defaults; ``lidar2ego[i]``, ``ego2global[i]`` 4x4.
    """
    rows = {k: [] for k in ("sample_idx", "translation", "size", "rotation", "velocity", "label", "score", "attr")}
    for i, token in enumerate(sample_tokens):
        b = boxes[i]
        n = len(b)
        lab = np.asarray(labels[i], dtype=np.int64).reshape(-1)
        sc = np.asarray(scores[i], dtype=np.float64).reshape(-1)
        if len(lab) != n or len(sc) != n:
            raise ValueError(f"sample {token}: {n} boxes but {len(sc)} scores and {len(lab)} labels")
        if n and (lab.min() < 0 or lab.max() >= len(NUSC_DET_CLASSES)):
            raise ValueError(f"sample {token}: label out of range 0..{len(NUSC_DET_CLASSES) - 1}")
        at = np.full(n, -1, np.int64) if attrs is None or attrs[i] is None else np.asarray(attrs[i], np.int64).reshape(n)
        for j in range(n):
            if at[j] < 0:
                default = NUSC_DEFAULT_ATTRIBUTE[NUSC_DET_CLASSES[lab[j]]]
                at[j] = _ATTR_INDEX[default] if default else -1
        recs = b.to_nuscenes(lidar2ego[i], ego2global[i])
        rows["sample_idx"].append(np.full(n, i))
        rows["translation"].append(np.array([r["translation"] for r in recs]).reshape(n, 3))
        rows["size"].append(np.array([r["size"] for r in recs]).reshape(n, 3))
        rows["rotation"].append(np.array([r["rotation"] for r in recs]).reshape(n, 4))
        vel = np.array([r["velocity"] for r in recs]).reshape(n, 2)
        rows["velocity"].append(np.nan_to_num(vel, nan=0.0))  # unknown velocity -> 0 (finite JSON)
        rows["label"].append(lab)
        rows["score"].append(sc)
        rows["attr"].append(at)
    cat = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in rows.items()}
    return NuscBoxes(list(sample_tokens), **cat)


def to_submission(boxes: NuscBoxes, meta: dict | None = None) -> dict:
    """:class:`NuscBoxes` -> the official results dict (every sample present, maybe empty)."""
    results = {t: [] for t in boxes.sample_tokens}
    for k in range(len(boxes)):
        token = boxes.sample_tokens[boxes.sample_idx[k]]
        a = boxes.attr[k]
        results[token].append({
            "sample_token": token,
            "translation": boxes.translation[k].tolist(),
            "size": boxes.size[k].tolist(),
            "rotation": boxes.rotation[k].tolist(),
            "velocity": boxes.velocity[k].tolist(),
            "detection_name": NUSC_DET_CLASSES[boxes.label[k]],
            "detection_score": float(boxes.score[k]),
            "attribute_name": NUSC_ATTRIBUTES[a] if a >= 0 else "",
        })
    return {"meta": dict(DEFAULT_META if meta is None else meta), "results": results}


def write_submission(path, boxes: NuscBoxes, meta: dict | None = None) -> Path:
    """Write the official results JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        json.dump(to_submission(boxes, meta), f)
    return path


def _bad(source: str, where: str, msg: str) -> ValueError:
    return ValueError(f"{source}: {where}: {msg}")


def _check_vector(source, where, key, value, n, positive=False):
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise _bad(source, where, f"'{key}' must be a list of {n} numbers, got {value!r}")
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise _bad(source, where, f"'{key}' must hold {n} finite numbers, got {value!r}")
        if positive and v <= 0:
            raise _bad(source, where, f"'{key}' must be > 0, got {value!r}")


def _check_box(source: str, token: str, j: int, box) -> None:
    """Slow, precise validation of one box (called only when the fast path fails)."""
    where = f"results[{token!r}][{j}]"
    if not isinstance(box, dict):
        raise _bad(source, where, f"expected a box object, got {type(box).__name__}")
    missing = [k for k in _BOX_KEYS if k not in box]
    if missing:
        raise _bad(source, where, f"missing field(s) {missing}")
    if box.get("sample_token", token) != token:
        raise _bad(source, where, f"sample_token {box['sample_token']!r} differs from its results key")
    _check_vector(source, where, "translation", box["translation"], 3)
    _check_vector(source, where, "size", box["size"], 3, positive=True)
    _check_vector(source, where, "rotation", box["rotation"], 4)
    if sum(v * v for v in box["rotation"]) == 0:
        raise _bad(source, where, "'rotation' is the zero quaternion")
    if "num_pts" in box and (isinstance(box["num_pts"], bool) or not isinstance(box["num_pts"], int)):
        raise _bad(source, where, f"'num_pts' must be an integer, got {box['num_pts']!r}")
    _check_vector(source, where, "velocity", box["velocity"], 2)
    name = box["detection_name"]
    if name not in _CLASS_INDEX:
        raise _bad(source, where, f"unknown detection_name {name!r}; expected one of {list(NUSC_DET_CLASSES)}")
    score = box["detection_score"]
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
        raise _bad(source, where, f"'detection_score' must be a finite number, got {score!r}")
    attr = box["attribute_name"]
    if attr != "" and attr not in NUSC_CLASS_ATTRIBUTES[name]:
        raise _bad(source, where, f"attribute_name {attr!r} does not belong to class {name!r}; "
                   f"expected '' or one of {list(NUSC_CLASS_ATTRIBUTES[name])}")


def load_submission(source, max_boxes_per_sample: int = MAX_BOXES_PER_SAMPLE) -> tuple[dict, NuscBoxes]:
    """Read and validate a submission (a path to the JSON file, or the already-parsed dict).

    Returns ``(meta, boxes)``; rows keep the file's order. Raises ``ValueError`` naming the file,
    the sample and the field on: malformed JSON, missing ``meta``/``results``, more than
    ``max_boxes_per_sample`` boxes in a sample, missing fields, unknown class, an attribute not
    belonging to its class, non-finite numbers, non-positive sizes.
    """
    if isinstance(source, dict):
        data, name = source, "<submission dict>"
    else:
        name = str(source)
        if not Path(name).is_file():
            raise FileNotFoundError(f"submission file not found: {name}")
        try:
            with open(name) as f:
                data = json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}: malformed JSON ({err})") from err
    if not isinstance(data, dict):
        raise ValueError(f"{name}: expected a JSON object with 'meta' and 'results'")
    for key in ("meta", "results"):
        if key not in data:
            raise ValueError(f"{name}: missing top-level field '{key}' (expected 'meta' and 'results')")
    meta, results = data["meta"], data["results"]
    if not isinstance(meta, dict):
        raise ValueError(f"{name}: 'meta' must be an object, got {type(meta).__name__}")
    if not isinstance(results, dict):
        raise ValueError(f"{name}: 'results' must map sample tokens to lists of boxes")
    tokens = list(results.keys())
    flat, sidx = [], []
    for i, token in enumerate(tokens):
        boxes = results[token]
        if not isinstance(boxes, list):
            raise _bad(name, f"results[{token!r}]", "expected a list of boxes")
        if len(boxes) > max_boxes_per_sample:
            raise _bad(name, f"results[{token!r}]", f"{len(boxes)} boxes; at most {max_boxes_per_sample} allowed")
        flat.extend(boxes)
        sidx.extend([i] * len(boxes))
    try:
        out = _fast_arrays(flat, sidx, tokens)
    except (KeyError, TypeError, ValueError):
        out = None
    if out is None:  # locate the offending box for a precise message
        for i, token in enumerate(tokens):
            for j, box in enumerate(results[token]):
                _check_box(name, token, j, box)
        raise ValueError(f"{name}: invalid submission")  # pragma: no cover - checks above are exhaustive
    return meta, out


def _fast_arrays(flat: list, sidx: list, tokens: list) -> NuscBoxes | None:
    """Vectorised parse + validation; None when anything is off (the slow path then explains)."""
    n = len(flat)
    if n == 0:
        return NuscBoxes.empty(tokens)
    trans = np.array([b["translation"] for b in flat], dtype=np.float64)
    size = np.array([b["size"] for b in flat], dtype=np.float64)
    rot = np.array([b["rotation"] for b in flat], dtype=np.float64)
    vel = np.array([b["velocity"] for b in flat], dtype=np.float64)
    score_raw = [b["detection_score"] for b in flat]
    if any(isinstance(s, (bool, str)) for s in score_raw):
        return None
    score = np.array(score_raw, dtype=np.float64)
    label = np.array([_CLASS_INDEX[b["detection_name"]] for b in flat], dtype=np.int64)
    attr_names = [b["attribute_name"] for b in flat]
    attr = np.array([_ATTR_INDEX[a] if a else -1 for a in attr_names], dtype=np.int64)
    if any(b.get("sample_token", tokens[s]) != tokens[s] for b, s in zip(flat, sidx)):
        return None
    if trans.shape != (n, 3) or size.shape != (n, 3) or rot.shape != (n, 4) or vel.shape != (n, 2):
        return None
    finite = np.isfinite(trans).all() and np.isfinite(size).all() and np.isfinite(rot).all()
    if not (finite and np.isfinite(vel).all() and np.isfinite(score).all()):
        return None
    if (size <= 0).any() or (np.abs(rot).sum(axis=1) == 0).any():
        return None
    ok_attr = np.zeros((len(NUSC_DET_CLASSES), len(NUSC_ATTRIBUTES) + 1), bool)
    ok_attr[:, -1] = True  # '' always allowed
    for c, name in enumerate(NUSC_DET_CLASSES):
        for a in NUSC_CLASS_ATTRIBUTES[name]:
            ok_attr[c, _ATTR_INDEX[a]] = True
    if not ok_attr[label, attr].all():
        return None
    pts = [b.get("num_pts", -1) for b in flat]  # the devkit honours num_pts when a submission has it
    if any(isinstance(p, bool) or not isinstance(p, int) for p in pts):
        return None
    return NuscBoxes(tokens, np.asarray(sidx), trans, size, rot, vel, label, score, attr, np.asarray(pts))


def check_sample_set(found, expected, source: str = "submission") -> None:
    """Raise ``ValueError`` unless ``found`` and ``expected`` hold the same sample tokens."""
    found, expected = set(found), set(expected)
    missing, extra = sorted(expected - found), sorted(found - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} sample(s) of the split missing from results (e.g. {missing[:3]})")
        if extra:
            parts.append(f"{len(extra)} sample token(s) not in the split (e.g. {extra[:3]})")
        raise ValueError(f"{source}: " + "; ".join(parts))
