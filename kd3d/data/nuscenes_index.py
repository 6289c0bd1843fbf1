"""nuScenes tables -> kd3d sample index (plain JSON, no pickle).

The index holds, per key frame, everything :class:`~kd3d.data.nuscenes.NuScenesDataset` needs
(file paths relative to the dataroot, 4x4 transforms, GT boxes already in the key-frame LiDAR
frame), so training never parses the devkit tables. It is built by reading the tables' JSON
directly (the same records the devkit's ``NuScenes`` class loads), which is what
``kd3d create-data nuscenes`` writes to disk.

Frames (all 4x4 float64, row-major lists in the JSON):
  lidar2ego / ego2global    key-frame LIDAR_TOP calibrated_sensor / ego_pose
  sweeps[i].sweep2lidar     sweep LiDAR -> ego(t_sweep) -> global -> ego(t_key) -> LiDAR(t_key)
  cams[c].cam2lidar         camera -> ego(t_cam) -> global -> ego(t_key) -> LiDAR(t_key)
  anns.boxes                (M, 9) Boxes3D layout in the key-frame LiDAR frame; velocity from
                            the devkit's ``box_velocity`` rule (centred difference, NaN if not
                            computable or the time gap exceeds 1.5 s / 3 s)
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from kd3d.structures.boxes import Boxes3D
from kd3d.structures.geometry import pose_matrix

INDEX_FORMAT = "kd3d-nuscenes-index"
INDEX_FORMAT_VERSION = 2  # 2: JSON lines
# Tables whose byte sizes fingerprint a version folder (checked when an index is reused).
FINGERPRINT_TABLES = ("scene.json", "sample.json", "sample_data.json", "sample_annotation.json")
_REQUIRED_TABLES = ("scene", "sample", "sample_data", "ego_pose", "calibrated_sensor", "sensor",
                    "sample_annotation", "instance", "category", "attribute")


def version_dir(dataroot: str | Path, version: str) -> Path:
    """``dataroot/version`` after checking both exist; errors list what is there instead."""
    root = Path(dataroot)
    if not root.is_dir():
        raise FileNotFoundError(f"nuScenes dataroot not found: {root}")
    vdir = root / version
    if not vdir.is_dir():
        found = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "sample.json").is_file())
        raise FileNotFoundError(
            f"nuScenes version folder not found: {vdir} (expected the table JSONs of version {version!r} "
            f"there; version folders found under {root}: {found or 'none'})"
        )
    return vdir


def table_fingerprint(dataroot: str | Path, version: str) -> dict[str, int]:
    vdir = version_dir(dataroot, version)
    return {name: (vdir / name).stat().st_size for name in FINGERPRINT_TABLES if (vdir / name).is_file()}


class NuScenesTables:
    """The devkit tables of one version folder, loaded as plain dicts keyed by token."""

    def __init__(self, dataroot: str | Path, version: str, *, need_lidarseg: bool | None = None):
        self.dataroot = Path(dataroot)
        self.version = version
        self.vdir = version_dir(dataroot, version)
        for name in _REQUIRED_TABLES:
            setattr(self, name, self._load(name))
        has_seg = (self.vdir / "lidarseg.json").is_file()
        if need_lidarseg and not has_seg:
            raise FileNotFoundError(f"{self.vdir / 'lidarseg.json'}: lidarseg table not found (load_lidarseg=True)")
        self.lidarseg = self._load("lidarseg") if has_seg and need_lidarseg is not False else {}
        self.seg_by_sd = {r["sample_data_token"]: r["filename"] for r in self.lidarseg.values()}
        # key-frame sample_data per sample and channel
        self.key_sd: dict[str, dict[str, dict]] = {}
        for sd in self.sample_data.values():
            if sd.get("is_key_frame"):
                chan = self.channel(sd)
                self.key_sd.setdefault(sd["sample_token"], {})[chan] = sd
        self.anns_by_sample: dict[str, list[dict]] = {}
        for ann in self.sample_annotation.values():
            self.anns_by_sample.setdefault(ann["sample_token"], []).append(ann)

    def _load(self, name: str) -> dict[str, dict]:
        path = self.vdir / f"{name}.json"
        if not path.is_file():
            raise FileNotFoundError(f"nuScenes table missing: {path} (required by kd3d's loader)")
        try:
            records = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: invalid JSON ({exc})") from exc
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of records, got {type(records).__name__}")
        return {r["token"]: r for r in records}

    def get(self, table: str, token: str) -> dict:
        try:
            return getattr(self, table)[token]
        except KeyError:
            raise KeyError(f"{self.vdir / (table + '.json')}: no record with token {token!r}") from None

    def channel(self, sd: dict) -> str:
        cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
        return self.get("sensor", cs["sensor_token"])["channel"]

    def sensor_pose(self, sd: dict) -> tuple[np.ndarray, np.ndarray]:
        """(sensor2ego, ego2global) 4x4 of a sample_data record."""
        cs = self.get("calibrated_sensor", sd["calibrated_sensor_token"])
        pose = self.get("ego_pose", sd["ego_pose_token"])
        return pose_matrix(cs["rotation"], cs["translation"]), pose_matrix(pose["rotation"], pose["translation"])

    def box_velocity(self, ann: dict, max_time_diff: float = 1.5) -> np.ndarray:
        """Global (3,) velocity by the devkit's rule (``NuScenes.box_velocity``), NaN if unknown."""
        has_prev, has_next = ann["prev"] != "", ann["next"] != ""
        if not has_prev and not has_next:
            return np.full(3, np.nan)
        first = self.get("sample_annotation", ann["prev"]) if has_prev else ann
        last = self.get("sample_annotation", ann["next"]) if has_next else ann
        dt = 1e-6 * (self.get("sample", last["sample_token"])["timestamp"]
                     - self.get("sample", first["sample_token"])["timestamp"])
        if has_prev and has_next:
            max_time_diff *= 2
        if dt > max_time_diff or dt == 0:
            return np.full(3, np.nan)
        return (np.asarray(last["translation"], float) - np.asarray(first["translation"], float)) / dt

    def scene_names(self) -> dict[str, str]:
        return {s["name"]: tok for tok, s in self.scene.items()}

    def samples_of_scene(self, scene_token: str) -> list[str]:
        scene = self.get("scene", scene_token)
        out, tok = [], scene["first_sample_token"]
        while tok:
            out.append(tok)
            tok = self.get("sample", tok)["next"]
        return out


def resolve_split(tables: NuScenesTables, split: str) -> list[str]:
    """Scene names of ``split`` present in this version ('all' = every scene of the version)."""
    from nuscenes.utils.splits import create_splits_scenes

    present = tables.scene_names()
    if split == "all":
        return sorted(present)
    splits = create_splits_scenes()
    if split not in splits:
        raise ValueError(f"unknown nuScenes split {split!r}; expected one of {sorted(splits) + ['all']}")
    names = [n for n in splits[split] if n in present]
    if not names:
        raise ValueError(
            f"split {split!r} has no samples in {tables.vdir}: none of its {len(splits[split])} scenes "
            f"(e.g. {splits[split][:3]}) are in scene.json (found {sorted(present)[:5]}...); "
            "use the split matching the version (v1.0-mini: mini_train/mini_val; v1.0-trainval: train/val) or 'all'"
        )
    return names


def _m(a: np.ndarray) -> list:
    return np.asarray(a, dtype=np.float64).round(12).tolist()


def build_sample_entry(tables: NuScenesTables, sample_token: str, *, max_sweeps: int = 10) -> dict:
    """One index entry (see module docstring)."""
    sample = tables.get("sample", sample_token)
    key = tables.key_sd.get(sample_token, {})
    if "LIDAR_TOP" not in key:
        raise ValueError(f"{tables.vdir / 'sample_data.json'}: sample {sample_token} has no key-frame LIDAR_TOP record")
    lsd = key["LIDAR_TOP"]
    l2e, e2g = tables.sensor_pose(lsd)
    global2lidar = np.linalg.inv(e2g @ l2e)
    t_key = 1e-6 * lsd["timestamp"]

    sweeps, sd = [], lsd
    while len(sweeps) < max_sweeps - 1 and sd["prev"]:
        sd = tables.get("sample_data", sd["prev"])
        s2e, se2g = tables.sensor_pose(sd)
        sweeps.append({"path": sd["filename"], "dt": t_key - 1e-6 * sd["timestamp"],
                       "sweep2lidar": _m(global2lidar @ se2g @ s2e)})

    cams = {}
    for chan, csd in sorted(key.items()):
        if not chan.startswith("CAM"):
            continue
        c2e, ce2g = tables.sensor_pose(csd)
        cs = tables.get("calibrated_sensor", csd["calibrated_sensor_token"])
        cams[chan] = {"path": csd["filename"], "intrinsics": _m(cs["camera_intrinsic"]),
                      "cam2lidar": _m(global2lidar @ ce2g @ c2e), "timestamp": 1e-6 * csd["timestamp"],
                      "width": csd.get("width"), "height": csd.get("height")}

    anns = tables.anns_by_sample.get(sample_token, [])
    cats, attrs, boxes = [], [], Boxes3D()
    if anns:
        vel = np.stack([tables.box_velocity(a)[:2] for a in anns])
        boxes = Boxes3D.from_nuscenes([a["translation"] for a in anns], [a["size"] for a in anns],
                                      [a["rotation"] for a in anns], vel, l2e, e2g)
        for a in anns:
            inst = tables.get("instance", a["instance_token"])
            cats.append(tables.get("category", inst["category_token"])["name"])
            attrs.append([tables.get("attribute", t)["name"] for t in a["attribute_tokens"]])
    scene = tables.get("scene", sample["scene_token"])
    return {
        "token": sample_token, "scene": scene["name"], "timestamp": 1e-6 * sample["timestamp"],
        "lidar": {"sd_token": lsd["token"], "path": lsd["filename"], "lidarseg": tables.seg_by_sd.get(lsd["token"])},
        "lidar2ego": _m(l2e), "ego2global": _m(e2g), "sweeps": sweeps, "cams": cams,
        "anns": {
            "boxes": [[None if not np.isfinite(v) else float(v) for v in row] for row in boxes.data],
            "category": cats, "attributes": attrs,
            "num_lidar_pts": [int(a.get("num_lidar_pts", 0)) for a in anns],
            "instance": [a["instance_token"] for a in anns], "token": [a["token"] for a in anns],
        },
    }


def build_index(dataroot: str | Path, version: str, splits: list[str], *, max_sweeps: int = 10,
                tables: NuScenesTables | None = None, extra_splits: dict[str, list[str]] | None = None) -> dict:
    """Index dict for ``splits`` (each a split name); ``extra_splits`` maps a name to sample tokens."""
    tables = tables or NuScenesTables(dataroot, version)
    split_tokens: dict[str, list[str]] = {}
    for split in splits:
        names = set(resolve_split(tables, split))
        toks = []
        for tok, scene in sorted(tables.scene.items(), key=lambda kv: kv[1]["name"]):
            if scene["name"] in names:
                toks.extend(tables.samples_of_scene(tok))
        split_tokens[split] = toks
    for name, toks in (extra_splits or {}).items():
        missing = [t for t in toks if t not in tables.sample]
        if missing:
            raise ValueError(f"split {name!r}: {len(missing)} sample tokens not in {tables.vdir / 'sample.json'}, "
                             f"e.g. {missing[:3]}")
        split_tokens[name] = list(toks)
    needed = sorted({t for toks in split_tokens.values() for t in toks})
    samples = {t: build_sample_entry(tables, t, max_sweeps=max_sweeps) for t in needed}
    category_index = {c["name"]: c["index"] for c in tables.category.values() if "index" in c}
    return {
        "format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "version": version,
        "max_sweeps": max_sweeps, "fingerprint": table_fingerprint(dataroot, version),
        "has_lidarseg": bool(tables.lidarseg), "lidarseg_categories": category_index,
        "splits": split_tokens, "samples": samples,
    }


def default_index_path(dataroot: str | Path, version: str) -> Path:
    return Path(dataroot) / f"kd3d_index_{version}.json"


def write_index(index: dict, path: str | Path) -> Path:
    """Write ``index`` as JSON lines: a header object (everything but ``samples``), then one line
    per sample ``<token>\t<json entry>``. Loading keeps each entry as text and parses it on access,
    so a trainval-sized index stays compact in memory and fork-friendly for DataLoader workers."""
    path = Path(path)
    header = {k: v for k, v in index.items() if k != "samples"}
    header["num_samples"] = len(index["samples"])
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    with tmp.open("w") as f:
        f.write(json.dumps(header, separators=(",", ":"), allow_nan=False) + "\n")
        for tok, entry in index["samples"].items():
            f.write(tok + "\t" + json.dumps(entry, separators=(",", ":"), allow_nan=False) + "\n")
    tmp.replace(path)
    return path


def read_index(path: str | Path, dataroot: str | Path, version: str, split: str | None = None) -> dict:
    """Load an index written by :func:`write_index` and check it belongs to ``dataroot/version``
    (format, version, table sizes). ``samples`` maps token -> the entry's JSON text (parse with
    :func:`entry`); with ``split`` only that split's entries are kept (none if it is absent)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"kd3d index not found: {path} (build it with `kd3d create-data nuscenes`)")
    with path.open() as f:
        first = f.readline()
        try:
            index = json.loads(first)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: corrupt kd3d index header ({exc}); rebuild it with "
                             "`kd3d create-data nuscenes`") from exc
        if not isinstance(index, dict) or index.get("format") != INDEX_FORMAT:
            raise ValueError(f"{path}: field 'format' is not {INDEX_FORMAT!r}; not a kd3d nuScenes index")
        if index.get("format_version") != INDEX_FORMAT_VERSION:
            raise ValueError(f"{path}: format_version {index.get('format_version')} != {INDEX_FORMAT_VERSION}; "
                             "rebuild it")
        if index.get("version") != version:
            raise ValueError(f"{path}: index was built for version {index.get('version')!r}, "
                             f"dataset asks for {version!r}")
        fp = table_fingerprint(dataroot, version)
        if index.get("fingerprint") != fp:
            raise ValueError(f"{path}: table sizes {index.get('fingerprint')} do not match {Path(dataroot) / version} "
                             f"({fp}); the index is stale or from another dataroot, rebuild it")
        wanted = None if split is None else set(index.get("splits", {}).get(split, []))
        samples = {}
        for lineno, line in enumerate(f, 2):
            tok, sep, body = line.partition("\t")
            if not sep:
                raise ValueError(f"{path}:{lineno}: expected '<token>\\t<json>', the index is truncated or corrupt")
            if wanted is None or tok in wanted:
                samples[tok] = body
    if (wanted is None and len(samples) != index.get("num_samples")) or (wanted is not None and len(samples) != len(wanted)):
        raise ValueError(f"{path}: sample lines missing (header says {index.get('num_samples')} samples); "
                         "the index is truncated, rebuild it")
    index["samples"] = samples
    return index


def entry(path: str | Path, value) -> dict:
    """An index entry as a dict (``value``: dict, or the JSON text kept by :func:`read_index`)."""
    if isinstance(value, dict):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: corrupt sample entry in kd3d index ({exc}); rebuild it") from exc
