"""Parsing of mmdet3d info files into kd3d entries (layouts in :mod:`kd3d.data.infos`).

:func:`read_infos` loads the pickle (restricted unpickler) and finds dataset, layout, class
table and box convention; :func:`entry_nuscenes` / :func:`entry_kitti` turn one info into the
entry dict kd3d's loaders read. Errors name the file, the info index, the field and what was
expected.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kd3d.data.pkl import load_pkl
from kd3d.structures.calib import KittiCalib
from kd3d.structures.geometry import limit_period, pose_matrix

# Folders a path stored relative to mmdet3d's working dir (``./data/nuscenes/sweeps/...``) is cut at.
_ANCHORS = ("samples", "sweeps", "training", "testing")
_BOX_CONVENTIONS = ("auto", "lwh", "legacy")


@dataclass
class InfoFile:
    """A loaded info file. ``infos``: the raw info dicts; ``layout``: ``'1.x'`` (data_list) or
    ``'0.x'``; ``classes``: label index -> class name (1.x); ``box_convention``: ``'lwh'`` or
    ``'legacy'`` (nuScenes; see :mod:`kd3d.data.infos`); ``negated_translations``: a nuScenes 1.x
    file from mmdet3d's ``update_infos_to_v2.py`` before its fix of 2022-12-14 (#2110), whose
    ``lidar2cam`` / ``lidar2sensor`` hold ``[R^T, -t]`` instead of ``[R^T, -R^T t]``."""

    path: Path
    dataset: str
    layout: str
    infos: list
    classes: dict
    version: str | None = None
    box_convention: str = "lwh"
    negated_translations: bool = False


class _Where:
    """Error context: file, info index."""

    def __init__(self, path, index: int, prefix: str = ""):
        self.path, self.index, self.prefix = path, index, prefix

    def sub(self, name: str) -> "_Where":
        """Context for the fields of a nested record (``sweeps[2]`` -> ``sweeps[2].data_path``)."""
        return _Where(self.path, self.index, f"{self.prefix}{name}.")

    def err(self, field: str, expected: str, got: Any = None) -> ValueError:
        tail = "" if got is None else f", got {type(got).__name__} {str(got)[:60]}"
        return ValueError(f"{self.path}: info {self.index} field '{self.prefix}{field}': expected {expected}{tail}")

    def get(self, d: dict, field: str, default: Any = ...) -> Any:
        cur = d
        for part in field.split("."):
            if not isinstance(cur, dict) or part not in cur:
                if default is not ...:
                    return default
                raise self.err(field, "a value (missing)")
            cur = cur[part]
        return cur

    def mat(self, d: dict, field: str, shapes=((4, 4),), default: Any = ...) -> np.ndarray:
        v = self.get(d, field, default)
        if v is None:
            return v
        try:
            a = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise self.err(field, f"a numeric matrix of shape {' or '.join(map(str, shapes))}", v) from None
        if a.shape not in shapes:
            raise self.err(field, f"shape {' or '.join(map(str, shapes))}", f"shape {a.shape}")
        return a

    def vec(self, d: dict, field: str, n: int) -> np.ndarray:
        v = self.get(d, field)
        try:
            a = np.asarray(v, np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise self.err(field, f"{n} numbers", v) from None
        if a.shape != (n,):
            raise self.err(field, f"{n} numbers", f"{a.size} numbers")
        return a

    def rows(self, d: dict, field: str, width: int | tuple, n: int | None = None) -> np.ndarray:
        v = self.get(d, field)
        try:
            a = np.asarray(v, np.float64)
        except (TypeError, ValueError):
            raise self.err(field, f"(N, {width}) numbers", v) from None
        widths = width if isinstance(width, tuple) else (width,)
        a = a.reshape(0, widths[0]) if a.size == 0 else a
        if a.ndim != 2 or a.shape[1] not in widths or (n is not None and a.shape[0] != n):
            raise self.err(field, f"shape ({n if n is not None else 'N'}, {' or '.join(map(str, widths))})",
                           f"shape {a.shape}")
        return a


def read_infos(path: str | Path, *, box_convention: str = "auto") -> InfoFile:
    """Load an info ``.pkl`` (nuScenes / KITTI, mmdet3d 1.x or 0.x) and check its layout."""
    path = Path(path)
    if box_convention not in _BOX_CONVENTIONS:
        raise ValueError(f"box_convention must be one of {_BOX_CONVENTIONS}, got {box_convention!r}")
    obj = load_pkl(path)
    if isinstance(obj, dict) and "data_list" in obj:
        meta = obj.get("metainfo") or {}
        infos, layout = obj["data_list"], "1.x"
        name = str(meta.get("dataset", meta.get("DATASET", ""))).lower()
        if "categories" in meta:
            classes = {int(v): str(k) for k, v in meta["categories"].items() if int(v) >= 0}
        elif "classes" in meta or "CLASSES" in meta:
            classes = dict(enumerate(str(c) for c in meta.get("classes", meta.get("CLASSES"))))
        else:
            raise ValueError(f"{path}: field 'metainfo.categories' (or 'metainfo.classes') missing; "
                             "expected the label -> class table of an mmdet3d 1.x info file")
        version = meta.get("version")
    elif isinstance(obj, dict) and "infos" in obj:
        infos, layout, name, classes = obj["infos"], "0.x", "nuscenes", {}
        version = (obj.get("metadata") or {}).get("version")
    elif isinstance(obj, list):
        infos, layout, name, classes, version = obj, "0.x", "kitti", {}, None
    else:
        raise ValueError(f"{path}: expected an mmdet3d info file (a dict with 'data_list' (1.x) or 'infos' "
                         f"(nuScenes 0.x), or a list (KITTI 0.x)), got {type(obj).__name__}")
    if not isinstance(infos, list):
        raise ValueError(f"{path}: field '{'data_list' if layout == '1.x' else 'infos'}': expected a list of "
                         f"info dicts, got {type(infos).__name__}")
    for i, info in enumerate(infos):
        if not isinstance(info, dict):
            raise ValueError(f"{path}: info {i}: expected a dict, got {type(info).__name__}")
    if name not in ("nuscenes", "kitti"):
        first = infos[0] if infos else {}
        name = "kitti" if "images" in first and "CAM2" in first["images"] else "nuscenes" if "token" in first else name
    if name not in ("nuscenes", "kitti"):
        raise ValueError(f"{path}: field 'metainfo.dataset' is {name!r}; kd3d reads nuScenes and KITTI infos")
    info = InfoFile(path, name, layout, infos, classes, version)
    if name == "nuscenes":
        info.box_convention = _box_convention(info) if box_convention == "auto" else box_convention
        info.negated_translations = layout == "1.x" and _negated_translations(info)
    return info


def _lidar2x_inverse(m: np.ndarray, negated: bool) -> np.ndarray:
    """x -> LiDAR from a stored LiDAR -> x matrix ``[R^T, -R^T t]`` (or ``[R^T, -t]`` when negated)."""
    if not negated:
        return np.linalg.inv(m)
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = m[:3, :3].T, -m[:3, 3]
    return out


def _negated_translations(info: InfoFile) -> bool:
    """Whether the cameras' ``lidar2cam`` translations are the pre-#2110 ``-t``: compared with the
    camera position from ``inv(lidar2ego) @ cam2ego`` (which ignores the ego motion between the
    camera and LiDAR times, a few cm to dm), the fixed and the unfixed reading differ by metres
    (the camera's offset turned by the camera rotation)."""
    for i, d in enumerate(info.infos[:5]):
        w = _Where(info.path, i)
        l2e = w.mat(d, "lidar_points.lidar2ego", default=None)
        errs = {False: [], True: []}
        for chan, c in (d.get("images") or {}).items():
            if l2e is None or "cam2ego" not in c or "lidar2cam" not in c:
                continue
            wc = w.sub(f"images.{chan}")
            approx = (np.linalg.inv(l2e) @ wc.mat(c, "cam2ego"))[:3, 3]
            for neg in errs:
                errs[neg].append(np.linalg.norm(_lidar2x_inverse(wc.mat(c, "lidar2cam"), neg)[:3, 3] - approx))
        if errs[False]:
            return float(np.mean(errs[True])) < 0.5 * float(np.mean(errs[False]))
    return False


def _raw_boxes(info: InfoFile, i: int) -> np.ndarray:
    """(N, 7) stored ``bbox_3d`` / ``gt_boxes`` of info ``i`` (velocities of 9-dof boxes dropped)."""
    w, d = _Where(info.path, i), info.infos[i]
    if info.layout == "0.x":
        return w.rows(d, "gt_boxes", (7, 9))[:, :7] if "gt_boxes" in d else np.zeros((0, 7))
    rows = []
    for j, x in enumerate(w.get(d, "instances", [])):
        b = x.get("bbox_3d") if isinstance(x, dict) else None
        if b is None or len(b) not in (7, 9):
            raise w.err(f"instances[{j}].bbox_3d", "7 or 9 numbers (x y z size yaw [vx vy])", b)
        rows.append([float(v) for v in b[:7]])
    return np.array(rows, np.float64).reshape(-1, 7)


def _box_convention(info: InfoFile) -> str:
    """'lwh' or 'legacy' from the boxes: among clearly elongated boxes (long side >= 1.3 x the
    short one), the share whose first size is the longer one (~1 for lwh, ~0 for legacy)."""
    dims = [_raw_boxes(info, i)[:, 3:5] for i in range(min(len(info.infos), 200))]
    dims = np.concatenate(dims) if dims else np.zeros((0, 2))
    elong = dims[np.maximum(dims[:, 0], dims[:, 1]) >= 1.3 * np.minimum(dims[:, 0], dims[:, 1])]
    if len(elong) == 0:
        return "lwh"
    share = float(np.mean(elong[:, 0] > elong[:, 1]))
    if share >= 0.9:
        return "lwh"
    if share <= 0.1:
        return "legacy"
    raise ValueError(f"{info.path}: field 'bbox_3d' / 'gt_boxes': cannot tell the box size order ({share:.0%} of "
                     "elongated boxes list the long side first); pass box_convention='lwh' (mmdet3d >= 1.0) or "
                     "'legacy' (w l h and -yaw - pi/2, mmdet3d < 1.0)")


def resolve_path(root: Path, stored: Any, prefix: str, where: _Where, field: str, check: bool = True) -> Path:
    """The file a stored path names: a bare file name lies under ``root/prefix``; a path relative
    to mmdet3d's working dir is cut at its dataset folder (``samples``, ``sweeps``, ...)."""
    if not isinstance(stored, str) or not stored:
        raise where.err(field, "a file path string", stored)
    p = Path(stored)
    if p.is_absolute():
        cands = [p]
    elif len(p.parts) == 1:
        cands = [root / prefix / p]
    else:
        cands = [root / p] + [root.joinpath(*p.parts[p.parts.index(a):]) for a in _ANCHORS if a in p.parts]
        cands.append(root / prefix / p.name)
    for c in cands:
        if c.is_file():
            return c
    if not check:  # images: loaded (and reported missing) only when asked for
        return cands[0]
    raise FileNotFoundError(f"{where.path}: info {where.index} field '{field}' = {stored!r}: no file at "
                            f"{', '.join(map(str, dict.fromkeys(cands)))}")


def _boxes9(info: InfoFile, raw: np.ndarray, vel: np.ndarray) -> np.ndarray:
    """(N, 7|9) stored boxes + (N, 2) velocity -> (N, 9) Boxes3D layout."""
    out = np.concatenate([raw[:, :7], vel], axis=1)
    if info.box_convention == "legacy":
        out[:, [3, 4]] = raw[:, [4, 3]]
        out[:, 6] = limit_period(-raw[:, 6] - np.pi / 2)
    return out


def entry_nuscenes(info: InfoFile, i: int, root: Path, *, with_paths: bool = True) -> dict:
    """Info ``i`` as a kd3d nuScenes index entry (:mod:`kd3d.data.nuscenes_index`) whose
    ``anns`` hold ``boxes`` (M, 9), ``name``, ``num_lidar_pts``, ``valid``."""
    w, d = _Where(info.path, i), info.infos[i]
    token = w.get(d, "token")
    if not isinstance(token, str):
        raise w.err("token", "a sample token string", token)
    if not with_paths:
        return {"token": token}
    def res(stored, prefix, field, check=True):
        return resolve_path(root, stored, prefix, w, field, check)

    if info.layout == "1.x":
        t_key = float(w.get(d, "timestamp"))
        l2e, e2g = w.mat(d, "lidar_points.lidar2ego"), w.mat(d, "ego2global")
        lidar = res(w.get(d, "lidar_points.lidar_path"), "samples/LIDAR_TOP", "lidar_points.lidar_path")
        g2l = np.linalg.inv(e2g @ l2e)
        sweeps = []
        for j, sw in enumerate(w.get(d, "lidar_sweeps", [])):
            f, ws = f"lidar_sweeps[{j}]", w.sub(f"lidar_sweeps[{j}]")
            s_l2e = ws.mat(sw, "lidar_points.lidar2ego", default=None)
            s_e2g = ws.mat(sw, "ego2global", default=None)
            s2l = (g2l @ s_e2g @ s_l2e if s_l2e is not None and s_e2g is not None
                   else _lidar2x_inverse(ws.mat(sw, "lidar_points.lidar2sensor"), info.negated_translations))
            sweeps.append({"path": str(res(ws.get(sw, "lidar_points.lidar_path"), "sweeps/LIDAR_TOP",
                                           f + ".lidar_points.lidar_path")),
                           "dt": t_key - float(ws.get(sw, "timestamp")), "sweep2lidar": s2l})
        cams = {}
        for chan, c in (w.get(d, "images", {}) or {}).items():
            f, wc = f"images.{chan}", w.sub(f"images.{chan}")
            cams[chan] = {"path": str(res(wc.get(c, "img_path"), f"samples/{chan}", f + ".img_path", False)),
                          "intrinsics": wc.mat(c, "cam2img", ((3, 3), (3, 4), (4, 4)))[:3, :3],
                          "cam2lidar": _lidar2x_inverse(wc.mat(c, "lidar2cam"), info.negated_translations),
                          "timestamp": c.get("timestamp")}
        inst = w.get(d, "instances", [])
        raw = _raw_boxes(info, i)
        vel = np.array([x.get("velocity", [np.nan, np.nan]) if len(x["bbox_3d"]) == 7 else x["bbox_3d"][7:9]
                        for x in inst], np.float64).reshape(-1, 2)
        labels = [x.get("bbox_label_3d", x.get("bbox_label", -1)) for x in inst]
        names = [info.classes.get(int(lb), "") for lb in labels]
        npts = [int(x.get("num_lidar_pts", -1)) for x in inst]
        valid = [bool(x.get("bbox_3d_isvalid", True)) for x in inst]
    else:
        t_key = 1e-6 * float(w.get(d, "timestamp"))
        l2e = pose_matrix(w.get(d, "lidar2ego_rotation"), w.get(d, "lidar2ego_translation"))
        e2g = pose_matrix(w.get(d, "ego2global_rotation"), w.get(d, "ego2global_translation"))
        lidar = res(w.get(d, "lidar_path"), "samples/LIDAR_TOP", "lidar_path")

        def s2l(rec, f):
            m, ws = np.eye(4), w.sub(f)
            m[:3, :3] = ws.mat(rec, "sensor2lidar_rotation", ((3, 3),))
            m[:3, 3] = ws.vec(rec, "sensor2lidar_translation", 3)
            return m

        sweeps = [{"path": str(res(w.sub(f"sweeps[{j}]").get(sw, "data_path"), "sweeps/LIDAR_TOP",
                                   f"sweeps[{j}].data_path")),
                   "dt": t_key - 1e-6 * float(w.sub(f"sweeps[{j}]").get(sw, "timestamp")),
                   "sweep2lidar": s2l(sw, f"sweeps[{j}]")}
                  for j, sw in enumerate(w.get(d, "sweeps", []))]
        cams = {chan: {"path": str(res(w.sub(f"cams.{chan}").get(c, "data_path"), f"samples/{chan}",
                                       f"cams.{chan}.data_path", False)),
                       "intrinsics": w.sub(f"cams.{chan}").mat(c, "cam_intrinsic", ((3, 3),)),
                       "cam2lidar": s2l(c, f"cams.{chan}"),
                       "timestamp": 1e-6 * float(c.get("timestamp", 0))}
                for chan, c in (w.get(d, "cams", {}) or {}).items()}
        raw = _raw_boxes(info, i)
        n = len(raw)
        vel = w.rows(d, "gt_velocity", 2, n) if "gt_velocity" in d else np.full((n, 2), np.nan)
        names = [str(x) for x in w.get(d, "gt_names", [])] if n else []
        if len(names) != n:
            raise w.err("gt_names", f"{n} names (one per gt_boxes row)", f"{len(names)} names")
        npts = [int(x) for x in w.get(d, "num_lidar_pts", [-1] * n)]
        valid = [bool(x) for x in w.get(d, "valid_flag", [True] * n)]
    return {
        "token": token, "scene": d.get("scene_token", ""), "timestamp": t_key,
        "lidar": {"sd_token": d.get("lidar_token", d.get("lidar_points", {}).get("sample_data_token", "")),
                  "path": str(lidar), "lidarseg": None},
        "lidar2ego": l2e, "ego2global": e2g, "sweeps": sweeps, "cams": cams,
        "anns": {"boxes": _boxes9(info, raw, vel), "name": names, "num_lidar_pts": npts, "valid": valid},
    }


def entry_kitti(info: InfoFile, i: int, root: Path, prefix: dict, *, with_paths: bool = True) -> dict:
    """Info ``i`` as ``token``, ``lidar_path``, ``num_pts_feats``, ``img_path``, ``image_shape``,
    ``calib`` (:class:`KittiCalib`) and ``anns`` (label-file fields: name, truncation, occlusion,
    alpha, bbox (N, 4), dimensions (N, 3) h w l, location (N, 3) bottom centre, rotation_y,
    num_lidar_pts)."""
    w, d = _Where(info.path, i), info.infos[i]
    new = info.layout == "1.x"
    idx = w.get(d, "sample_idx" if new else "image.image_idx")
    token = f"{idx:06d}" if isinstance(idx, (int, np.integer)) else str(idx)
    if not with_paths:
        return {"token": token}
    if new:
        lidar = resolve_path(root, w.get(d, "lidar_points.lidar_path"), prefix["pts"], w, "lidar_points.lidar_path")
        nfeat = int(w.get(d, "lidar_points.num_pts_feats", 4))
        cam2 = w.get(d, "images.CAM2")
        img = resolve_path(root, w.sub("images.CAM2").get(cam2, "img_path"), prefix["img"], w, "images.CAM2.img_path",
                           check=False)
        shape = (cam2.get("height"), cam2.get("width"))
        p = {k: w.mat(d, f"images.CAM{k[1]}.cam2img", ((3, 4), (4, 4)), np.eye(3, 4))[:3] for k in ("P0", "P1", "P3")}
        p2 = w.mat(d, "images.CAM2.cam2img", ((3, 4), (4, 4)))[:3]
        if "R0_rect" in d.get("images", {}) and "Tr_velo_to_cam" in d.get("lidar_points", {}):
            r0 = w.mat(d, "images.R0_rect", ((3, 3), (4, 4)))[:3, :3]
            tr = w.mat(d, "lidar_points.Tr_velo_to_cam", ((3, 4), (4, 4)))[:3]
        else:  # lidar2cam = R0_rect @ Tr_velo_to_cam
            r0, tr = np.eye(3), w.mat(d, "images.CAM2.lidar2cam")[:3]
        imu = w.mat(d, "lidar_points.Tr_imu_to_velo", ((3, 4), (4, 4)), np.eye(3, 4))[:3]
        inst = w.get(d, "instances", [])
        b = _raw_boxes(info, i)
        lab = [int(x.get("bbox_label_3d", x.get("bbox_label", -1))) for x in inst]
        anns = {"name": np.array([info.classes.get(lb, "DontCare") for lb in lab], dtype=str).reshape(-1),
                "truncation": np.array([x.get("truncated", 0.0) for x in inst], np.float64).reshape(-1),
                "occlusion": np.array([x.get("occluded", 0) for x in inst], np.int64).reshape(-1),
                "alpha": np.array([x.get("alpha", -10.0) for x in inst], np.float64).reshape(-1),
                "bbox": np.array([x.get("bbox", [0, 0, 0, 0]) for x in inst], np.float64).reshape(-1, 4),
                "location": b[:, :3], "dimensions": b[:, [4, 5, 3]], "rotation_y": b[:, 6],
                "num_lidar_pts": np.array([x.get("num_lidar_pts", -1) for x in inst], np.int64).reshape(-1)}
    else:
        lidar = resolve_path(root, w.get(d, "point_cloud.velodyne_path"), prefix["pts"], w, "point_cloud.velodyne_path")
        nfeat = int(w.get(d, "point_cloud.num_features", 4))
        img = resolve_path(root, w.get(d, "image.image_path"), prefix["img"], w, "image.image_path", check=False)
        shape = tuple(int(v) for v in w.get(d, "image.image_shape", (None, None)))
        m = {k: w.mat(d, f"calib.{k}", ((3, 4), (4, 4)), np.eye(3, 4))[:3]
             for k in ("P0", "P1", "P3", "Tr_imu_to_velo")}
        p = {k: m[k] for k in ("P0", "P1", "P3")}
        p2 = w.mat(d, "calib.P2", ((3, 4), (4, 4)))[:3]
        r0 = w.mat(d, "calib.R0_rect", ((3, 3), (4, 4)))[:3, :3]
        tr = w.mat(d, "calib.Tr_velo_to_cam", ((3, 4), (4, 4)))[:3]
        imu = m["Tr_imu_to_velo"]
        a = d.get("annos") or {"name": []}
        n = len(a["name"])
        anns = {"name": np.array(a["name"], dtype=str).reshape(-1),
                "truncation": np.asarray(a.get("truncated", np.zeros(n)), np.float64).reshape(-1),
                "occlusion": np.asarray(a.get("occluded", np.zeros(n)), np.int64).reshape(-1),
                "alpha": np.asarray(a.get("alpha", np.full(n, -10.0)), np.float64).reshape(-1),
                "bbox": w.rows(a, "bbox", 4, n) if n else np.zeros((0, 4)),
                "location": w.rows(a, "location", 3, n) if n else np.zeros((0, 3)),
                "dimensions": (w.rows(a, "dimensions", 3, n) if n else np.zeros((0, 3)))[:, [1, 2, 0]],
                "rotation_y": np.asarray(a.get("rotation_y", np.zeros(n)), np.float64).reshape(-1),
                "num_lidar_pts": np.asarray(a.get("num_points_in_gt", np.full(n, -1)), np.int64).reshape(-1)}
    calib = KittiCalib(P2=p2, R0_rect=r0, Tr_velo_to_cam=tr, Tr_imu_to_velo=imu, **p)
    return {"token": token, "lidar_path": lidar, "num_pts_feats": nfeat, "img_path": img,
            "image_shape": shape, "calib": calib, "anns": anns}
