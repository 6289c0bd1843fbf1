"""Write synthetic scenes as a real-format nuScenes (+ nuScenes-lidarseg) dataset.

Layout under ``out_dir`` (what the official devkit reads)::

    <version>/{category,attribute,visibility,instance,sensor,calibrated_sensor,ego_pose,log,
               scene,sample,sample_data,sample_annotation,map,lidarseg}.json
    samples/LIDAR_TOP/<log>__LIDAR_TOP__<us>.pcd.bin     key frames, (N, 5) float32 x y z i ring
    sweeps/LIDAR_TOP/<log>__LIDAR_TOP__<us>.pcd.bin      the 20 Hz sweeps between key frames
    samples/CAM_*/<log>__CAM_*__<us>.jpg                  6 cameras per key frame
    lidarseg/<version>/<lidar sample_data token>_lidarseg.bin   uint8 per key-frame point
    maps/<token>.png                                      stub semantic prior map

Scene names come from the devkit's split lists, so ``create_splits_scenes()`` splits work.
Sweeps between key frames k-1 and k belong to sample k (as in the real data, so the devkit's
box interpolation for sweeps works); every key frame, including the first, has ``sweeps``
earlier sweeps. Radar is not simulated (``num_radar_pts`` is 0).
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np

from kd3d.data.synth import rig
from kd3d.data.synth.camera import render
from kd3d.data.synth.lidar import NUSCENES_LIDAR, cast_sweep
from kd3d.data.synth.output import prepare_out_dir, save_jpeg, save_png
from kd3d.data.synth.scene import ANNOTATION_RADIUS, SynthScene
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_LIDARSEG_CATEGORIES
from kd3d.structures.geometry import matrix_to_quaternion

KEY_INTERVAL = 0.5    # s between key frames (2 Hz)
SWEEP_INTERVAL = 0.05  # s between LiDAR sweeps (20 Hz)
VISIBILITY = (("1", "v0-40"), ("2", "v40-60"), ("3", "v60-80"), ("4", "v80-100"))
LOCATIONS = ("singapore-onenorth", "boston-seaport", "singapore-queenstown", "singapore-hollandvillage")
BASE_TIMESTAMP = 1532402927000000


def _split_names(n: int, version: str) -> list[tuple[str, str]]:
    """(scene name, split) for ``n`` scenes of ``version`` from the devkit's split lists."""
    from nuscenes.utils.splits import create_splits_scenes

    splits = create_splits_scenes()
    if version == "v1.0-mini":
        train_key, val_key = "mini_train", "mini_val"
    elif version == "v1.0-trainval":
        train_key, val_key = "train", "val"
    else:
        raise ValueError(f"version must be 'v1.0-mini' or 'v1.0-trainval', got {version!r}")
    train, val = splits[train_key], splits[val_key]
    if n > len(train) + len(val):
        raise ValueError(f"{version} has only {len(train) + len(val)} scenes in {train_key}+{val_key}, "
                         f"asked for scenes={n}")
    n_val = 0 if n < 2 else min(len(val), max(1, round(0.2 * n)), n - 1)
    n_train = n - n_val
    if n_train > len(train):
        n_train, n_val = len(train), n - len(train)
    return [(s, train_key) for s in train[:n_train]] + [(s, val_key) for s in val[:n_val]]


def choose_version(scenes: int, version: str | None) -> str:
    if version is None:
        return "v1.0-mini" if scenes <= 10 else "v1.0-trainval"
    if version == "v1.0-mini" and scenes > 10:
        raise ValueError(f"v1.0-mini holds at most 10 scenes (8 mini_train + 2 mini_val), asked for {scenes}; "
                         "use version='v1.0-trainval'")
    return version


class _Tables:
    def __init__(self, seed: int):
        self.seed = seed
        self.t: dict[str, list[dict]] = {k: [] for k in (
            "category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor", "ego_pose",
            "log", "scene", "sample", "sample_data", "sample_annotation", "map", "lidarseg")}

    def token(self, *parts) -> str:
        return hashlib.md5("/".join(["kd3d-synth", str(self.seed), *map(str, parts)]).encode()).hexdigest()

    def add(self, table: str, record: dict) -> dict:
        self.t[table].append(record)
        return record


def _chain(records: list[dict]) -> None:
    for a, b in zip(records[:-1], records[1:]):
        a["next"], b["prev"] = b["token"], a["token"]


def synth_scene(seed: int, index: int, samples_per_scene: int) -> SynthScene:
    """The world model behind scene ``index`` of a dataset generated with ``seed`` (``t`` = 0 at
    its first key frame), e.g. to re-render ground-truth class/instance buffers in tests."""
    return SynthScene(seed, index, duration=(samples_per_scene - 1) * KEY_INTERVAL)


def generate_nuscenes(out_dir, *, scenes: int = 2, samples_per_scene: int = 10, seed: int = 0,
                      version: str | None = None, image_size: tuple[int, int] = (640, 360),
                      sweeps: int = 9, overwrite: bool = False, progress: bool = True) -> dict:
    """Generate ``scenes`` scenes of ``samples_per_scene`` key frames under ``out_dir``.

    ``image_size`` is (W, H); ``sweeps`` the number of 20 Hz LiDAR sweeps before each key frame
    (9 in the real data). Deterministic for a given ``seed``. Returns a summary dict.
    """
    if scenes < 1 or samples_per_scene < 1:
        raise ValueError(f"scenes and samples_per_scene must be >= 1, got {scenes} and {samples_per_scene}")
    if not 0 <= sweeps <= 9:
        raise ValueError(f"sweeps must be in 0..9 (20 Hz between 2 Hz key frames), got {sweeps}")
    width, height = (int(v) for v in image_size)
    if width < 16 or height < 16:
        raise ValueError(f"image_size must be at least 16x16, got {image_size}")
    version = choose_version(scenes, version)
    names = _split_names(scenes, version)
    root = prepare_out_dir(out_dir, ("samples", "sweeps", "maps", "lidarseg", version), overwrite)
    for sub in ("samples/LIDAR_TOP", "sweeps/LIDAR_TOP", f"lidarseg/{version}", version):
        (root / sub).mkdir(parents=True, exist_ok=True)
    start = time.time()
    tb = _Tables(seed)
    _static_tables(tb)
    sensors = {r["channel"]: r["token"] for r in tb.t["sensor"]}
    attr_tok = {r["name"]: r["token"] for r in tb.t["attribute"]}
    cat_tok = {r["name"]: r["token"] for r in tb.t["category"]}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=scenes * samples_per_scene, desc="synth nuScenes", unit="sample")
    for si, (name, _split) in enumerate(names):
        scene = synth_scene(seed, si, samples_per_scene)
        _write_scene(root, version, tb, scene, si, name, samples_per_scene, sweeps, (width, height),
                     sensors, attr_tok, cat_tok, bar)
    if bar is not None:
        bar.close()
    _write_maps(root, tb)
    table_dir = root / version
    for table, records in tb.t.items():
        (table_dir / f"{table}.json").write_text(json.dumps(records, indent=0))
    elapsed = time.time() - start
    return {
        "format": "nuscenes", "version": version, "dataroot": str(root), "scenes": [n for n, _ in names],
        "splits": {s: [n for n, sp in names if sp == s] for s in sorted({sp for _, sp in names})},
        "samples": len(tb.t["sample"]), "sample_data": len(tb.t["sample_data"]),
        "annotations": len(tb.t["sample_annotation"]), "instances": len(tb.t["instance"]),
        "seconds": elapsed, "seconds_per_sample": elapsed / max(1, len(tb.t["sample"])),
    }


def _static_tables(tb: _Tables) -> None:
    for i, name in enumerate(NUSC_LIDARSEG_CATEGORIES):
        tb.add("category", {"token": tb.token("category", name), "name": name,
                            "description": f"synthetic {name}", "index": i})
    for name in NUSC_ATTRIBUTES:
        tb.add("attribute", {"token": tb.token("attribute", name), "name": name, "description": name})
    for tok, level in VISIBILITY:
        tb.add("visibility", {"token": tok, "level": level,
                              "description": f"visibility of whole object is between {level[1:].replace('-', ' and ')} %"})
    tb.add("sensor", {"token": tb.token("sensor", "LIDAR_TOP"), "channel": "LIDAR_TOP", "modality": "lidar"})
    for cam in rig.NUSC_CAMERAS:
        tb.add("sensor", {"token": tb.token("sensor", cam.channel), "channel": cam.channel, "modality": "camera"})


def _write_maps(root: Path, tb: _Tables) -> None:
    (root / "maps").mkdir(exist_ok=True)
    by_loc: dict[str, list[str]] = {}
    for log in tb.t["log"]:
        by_loc.setdefault(log["location"], []).append(log["token"])
    for loc, logs in sorted(by_loc.items()):
        tok = tb.token("map", loc)
        mask = np.zeros((64, 64), dtype=np.uint8)
        mask[24:40, :] = 255
        save_png(root / "maps" / f"{tok}.png", mask)
        tb.add("map", {"token": tok, "log_tokens": logs, "category": "semantic_prior", "filename": f"maps/{tok}.png"})


def _write_scene(root, version, tb, scene, si, name, n_samples, n_sweeps, size, sensors, attr_tok, cat_tok, bar):
    width, height = size
    loc = LOCATIONS[si % len(LOCATIONS)]
    logfile = f"n{15 + si % 5:03d}-2018-07-{10 + si % 18:02d}-{11 + si % 9:02d}-{10 + si % 49:02d}-45+0800"
    log = tb.add("log", {"token": tb.token("log", si), "logfile": logfile, "vehicle": "n015",
                         "date_captured": f"2018-07-{10 + si % 18:02d}", "location": loc})
    cs = {"LIDAR_TOP": tb.add("calibrated_sensor", {
        "token": tb.token("cs", si, "LIDAR_TOP"), "sensor_token": sensors["LIDAR_TOP"],
        "translation": list(rig.LIDAR_TRANSLATION), "rotation": [1.0, 0.0, 0.0, 0.0], "camera_intrinsic": []})}
    cams = []
    for cam in rig.NUSC_CAMERAS:
        c2e = rig.camera_to_ego(cam)
        K = rig.camera_intrinsic(cam, width, height)
        cs[cam.channel] = tb.add("calibrated_sensor", {
            "token": tb.token("cs", si, cam.channel), "sensor_token": sensors[cam.channel],
            "translation": [float(v) for v in c2e[:3, 3]], "rotation": matrix_to_quaternion(c2e[:3, :3]),
            "camera_intrinsic": K.tolist()})
        cams.append((cam, c2e, K))
    scene_rec = tb.add("scene", {"token": tb.token("scene", si), "log_token": log["token"], "nbr_samples": n_samples,
                                 "first_sample_token": "", "last_sample_token": "", "name": name,
                                 "description": f"kd3d synthetic street (seed {tb.seed}, "
                                                f"{'curved' if scene.road.curvature else 'straight'} road, "
                                                f"ego {scene.ego_speed:.1f} m/s)"})
    base = BASE_TIMESTAMP + si * 100_000_000 + (tb.seed % 1000) * 1_000_000_000
    l2e = rig.lidar_to_ego()
    samples, lidar_sds, cam_sds = [], [], {c.channel: [] for c, _, _ in cams}
    inst_anns: dict[int, list[dict]] = {}
    for k in range(n_samples):
        t_key = k * KEY_INTERVAL
        sample = tb.add("sample", {"token": tb.token("sample", si, k), "timestamp": base + int(round(t_key * 1e6)),
                                   "prev": "", "next": "", "scene_token": scene_rec["token"]})
        samples.append(sample)
        for j in range(n_sweeps, -1, -1):
            t = t_key - j * SWEEP_INTERVAL
            ts = base + int(round(t * 1e6))
            key = j == 0
            ego = scene.ego_pose(t)
            ep = _ego_pose(tb, ("lidar", si, k, j), ts, ego)
            rng = np.random.default_rng([tb.seed, si, k, j, 1])
            sweep = cast_sweep(scene, t, ego @ l2e, NUSCENES_LIDAR, rng)
            folder = "samples" if key else "sweeps"
            fname = f"{folder}/LIDAR_TOP/{logfile}__LIDAR_TOP__{ts}.pcd.bin"
            sweep["points"].tofile(root / fname)
            sd = tb.add("sample_data", _sd_record(tb.token("sd", si, k, j, "LIDAR_TOP"), sample["token"], ep["token"],
                                                  cs["LIDAR_TOP"]["token"], ts, "pcd", key, 0, 0, fname))
            lidar_sds.append(sd)
        # key frame extras: lidarseg, cameras, annotations
        key_sweep = sweep
        seg_name = f"lidarseg/{version}/{sd['token']}_lidarseg.bin"
        key_sweep["seg"].astype(np.uint8).tofile(root / seg_name)
        tb.add("lidarseg", {"token": sd["token"], "sample_data_token": sd["token"], "filename": seg_name})
        visible, total = {}, {}
        for cam, c2e, K in cams:
            ep = _ego_pose(tb, ("cam", si, k, cam.channel), ts, ego)
            rng = np.random.default_rng([tb.seed, si, k, 2, rig.NUSC_CAMERAS.index(cam)])
            out = render(scene, t_key, ego @ c2e, K, width, height, rng)
            fname = f"samples/{cam.channel}/{logfile}__{cam.channel}__{ts}.jpg"
            save_jpeg(root / fname, out["image"])
            cam_sds[cam.channel].append(tb.add("sample_data", _sd_record(
                tb.token("sd", si, k, cam.channel), sample["token"], ep["token"], cs[cam.channel]["token"], ts,
                "jpg", True, width, height, fname)))
            for obj, px in out["total_px"].items():
                total[obj] = total.get(obj, 0) + px
                visible[obj] = visible.get(obj, 0) + out["visible_px"][obj]
        _annotate(tb, scene, t_key, ego, l2e, key_sweep, sample, visible, total, inst_anns, attr_tok, si)
        if bar is not None:
            bar.update(1)
    _chain(samples)
    _chain(lidar_sds)
    for sds in cam_sds.values():
        _chain(sds)
    scene_rec["first_sample_token"], scene_rec["last_sample_token"] = samples[0]["token"], samples[-1]["token"]
    for obj, anns in sorted(inst_anns.items()):
        _chain(anns)
        inst = tb.add("instance", {"token": tb.token("instance", si, obj),
                                   "category_token": cat_tok[scene.objects[obj].category],
                                   "nbr_annotations": len(anns), "first_annotation_token": anns[0]["token"],
                                   "last_annotation_token": anns[-1]["token"]})
        for a in anns:
            a["instance_token"] = inst["token"]


def _ego_pose(tb, key, ts, ego) -> dict:
    return tb.add("ego_pose", {"token": tb.token("ego_pose", *key), "timestamp": ts,
                               "rotation": matrix_to_quaternion(ego[:3, :3]),
                               "translation": [float(v) for v in ego[:3, 3]]})


def _sd_record(token, sample_token, ep_token, cs_token, ts, fmt, key, width, height, filename) -> dict:
    return {"token": token, "sample_token": sample_token, "ego_pose_token": ep_token,
            "calibrated_sensor_token": cs_token, "timestamp": ts, "fileformat": fmt, "is_key_frame": key,
            "height": height, "width": width, "filename": filename, "prev": "", "next": ""}


def _points_per_box(boxes: Boxes3D, points: np.ndarray) -> np.ndarray:
    """(N,) number of ``points`` (M, 3) inside each box (same rule as ``points_in_boxes``)."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points[:, :2])
    radius = 0.5 * np.hypot(boxes.dims[:, 0], boxes.dims[:, 1]) + 1e-3
    counts = np.zeros(len(boxes), dtype=np.int64)
    for i, idx in enumerate(tree.query_ball_point(boxes.center[:, :2], radius)):
        if idx:
            counts[i] = boxes[i].points_in_boxes(points[idx])[:, 0].sum()
    return counts


def _annotate(tb, scene, t, ego, l2e, sweep, sample, visible, total, inst_anns, attr_tok, si) -> None:
    boxes = scene.object_boxes(t)
    if len(boxes) == 0:
        return
    lidar_pose = ego @ l2e
    dist = np.hypot(boxes[:, 0] - lidar_pose[0, 3], boxes[:, 1] - lidar_pose[1, 3])
    keep = np.nonzero(dist <= ANNOTATION_RADIUS)[0]
    if keep.size == 0:
        return
    lidar_boxes = Boxes3D(boxes[keep]).transform(np.linalg.inv(lidar_pose))
    counts = _points_per_box(lidar_boxes, sweep["points"][:, :3])
    records = lidar_boxes.to_nuscenes(l2e, ego)
    for n, obj in enumerate(keep):
        o = scene.objects[obj]
        frac = visible.get(int(obj), 0) / total[int(obj)] if total.get(int(obj), 0) > 0 else 0.0
        vis = "1" if frac < 0.4 else "2" if frac < 0.6 else "3" if frac < 0.8 else "4"
        rec = records[n]
        ann = tb.add("sample_annotation", {
            "token": tb.token("ann", si, sample["token"], int(obj)), "sample_token": sample["token"],
            "instance_token": "", "visibility_token": vis,
            "attribute_tokens": [attr_tok[o.attribute]] if o.attribute else [],
            "translation": rec["translation"], "size": rec["size"], "rotation": rec["rotation"],
            "prev": "", "next": "", "num_lidar_pts": int(counts[n]), "num_radar_pts": 0})
        inst_anns.setdefault(int(obj), []).append(ann)
