"""Tiny hand-built datasets in the real on-disk formats, for loader tests.

Independent of kd3d's own conversions where it matters: the nuScenes writer moves a *static*
world point set through known ego poses, so ego-motion-compensated sweeps must land exactly on
the key-frame positions of the same world points.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from pyquaternion import Quaternion

from kd3d.structures.classes import NUSC_LIDARSEG_CATEGORIES

CAMS = {"CAM_FRONT": 0.0, "CAM_FRONT_RIGHT": -0.96, "CAM_FRONT_LEFT": 0.96, "CAM_BACK": np.pi,
        "CAM_BACK_LEFT": 1.92, "CAM_BACK_RIGHT": -1.92}
CAM_AXES = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], float)  # columns: cam x, y, z in ego
LIDAR_T, LIDAR_YAW = np.array([0.9, 0.05, 1.8]), np.pi / 2  # LIDAR_TOP like the real car: x right, y forward


def rz(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def mat(rot, t):
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = rot, t
    return m


def q(rot):
    return list(Quaternion(matrix=rot).elements)


def ego_pose(scene_idx: int, t: float) -> np.ndarray:
    """ego -> global at time t (s since scene start)."""
    return mat(rz(0.3 + 0.15 * t + scene_idx), [100 + 6 * t + 50 * scene_idx, 40 + 0.8 * t * t, 0.05 * t])


def lidar2ego():
    return mat(rz(LIDAR_YAW), LIDAR_T)


def cam2ego(name):
    return mat(rz(CAMS[name]) @ CAM_AXES, rz(CAMS[name]) @ [1.2, 0.0, 1.5])


def write_tiny_nuscenes(root, *, version="v1.0-mini", scenes=("scene-0061", "scene-0103"), samples_per_scene=3,
                        pre_sweeps=2, image_hw=(36, 64), seed=0) -> dict:
    """Write a devkit-loadable version folder. Returns the truth: world points, poses, times."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    tabs = {k: [] for k in ("category", "attribute", "visibility", "instance", "sensor", "calibrated_sensor",
                            "ego_pose", "log", "scene", "sample", "sample_data", "sample_annotation", "map", "lidarseg")}
    counter = [0]

    def tok(prefix):
        counter[0] += 1
        return f"{prefix}{counter[0]:08x}".ljust(32, "0")

    for i, name in enumerate(NUSC_LIDARSEG_CATEGORIES):
        tabs["category"].append({"token": tok("cat"), "name": name, "description": "", "index": i})
    cat_tok = {c["name"]: c["token"] for c in tabs["category"]}
    for name in ("vehicle.moving", "vehicle.parked", "pedestrian.standing"):
        tabs["attribute"].append({"token": tok("att"), "name": name, "description": ""})
    att_tok = {a["name"]: a["token"] for a in tabs["attribute"]}
    tabs["visibility"].append({"token": "4", "level": "v80-100", "description": ""})
    cs_tok = {}
    for chan in ["LIDAR_TOP", *CAMS]:
        st = tok("sen")
        tabs["sensor"].append({"token": st, "channel": chan, "modality": "lidar" if chan == "LIDAR_TOP" else "camera"})
        if chan == "LIDAR_TOP":
            m, k = lidar2ego(), []
        else:
            m = cam2ego(chan)
            k = [[30.0, 0, image_hw[1] / 2], [0, 30.0, image_hw[0] / 2], [0, 0, 1]]
        cs_tok[chan] = tok("cal")
        tabs["calibrated_sensor"].append({"token": cs_tok[chan], "sensor_token": st, "translation": list(m[:3, 3]),
                                          "rotation": q(m[:3, :3]), "camera_intrinsic": k})
    (root / "maps").mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "maps" / "map.png")
    n_world = 300
    world = np.concatenate([rng.uniform([60, 0, -1], [200, 90, 3], (n_world, 3)),
                            rng.uniform(0, 100, (n_world, 1))], 1)
    world_label = rng.integers(0, 32, n_world).astype(np.uint8)
    truth = {"world": world, "scenes": {}, "version": version}
    t0_us = 1_533_151_603_000_000
    for si, sname in enumerate(scenes):
        log = tok("log")
        tabs["log"].append({"token": log, "logfile": sname, "vehicle": "n015", "date_captured": "2018-08-01",
                            "location": "singapore-onenorth"})
        scene_tok = tok("scn")
        n_lidar = pre_sweeps + 5 * (samples_per_scene - 1) + 1
        keys = [pre_sweeps + 5 * i for i in range(samples_per_scene)]
        sample_toks = [tok("smp") for _ in keys]
        base = t0_us + si * 100_000_000
        prev_sd = ""
        lidar_sds = []
        for j in range(n_lidar):
            t = 0.1 * j
            us = base + 100_000 * j
            pose_tok = tok("ego")
            e2g = ego_pose(si, t)
            tabs["ego_pose"].append({"token": pose_tok, "timestamp": us, "rotation": q(e2g[:3, :3]),
                                     "translation": list(e2g[:3, 3])})
            key = j in keys
            nxt = min((k for k in keys if k >= j), default=keys[-1])
            sd_tok = tok("sdl")
            folder = "samples" if key else "sweeps"
            fname = f"{folder}/LIDAR_TOP/{sname}__LIDAR_TOP__{us}.pcd.bin"
            s2w = e2g @ lidar2ego()
            pts = (world[:, :3] - s2w[:3, 3]) @ s2w[:3, :3]
            rows = np.concatenate([pts, world[:, 3:4], np.full((n_world, 1), 7.0)], 1).astype(np.float32)
            if si == 0 and j == 1:  # one sweep with a NaN point
                rows = np.concatenate([rows, np.array([[np.nan, 1, 1, 1, 0]], np.float32)])
            (root / folder / "LIDAR_TOP").mkdir(parents=True, exist_ok=True)
            rows.tofile(root / fname)
            rec = {"token": sd_tok, "sample_token": sample_toks[keys.index(nxt)], "ego_pose_token": pose_tok,
                   "calibrated_sensor_token": cs_tok["LIDAR_TOP"], "timestamp": us, "fileformat": "pcd",
                   "is_key_frame": key, "height": 0, "width": 0, "filename": fname, "prev": prev_sd, "next": ""}
            if prev_sd:
                tabs["sample_data"][-1]["next"] = sd_tok
            tabs["sample_data"].append(rec)
            prev_sd = sd_tok
            lidar_sds.append(rec)
            if key:
                seg = f"lidarseg/{version}/{sd_tok}_lidarseg.bin"
                (root / "lidarseg" / version).mkdir(parents=True, exist_ok=True)
                world_label.tofile(root / seg)
                tabs["lidarseg"].append({"token": tok("seg"), "sample_data_token": sd_tok, "filename": seg})
        for i, (j, st) in enumerate(zip(keys, sample_toks)):
            tabs["sample"].append({"token": st, "timestamp": base + 100_000 * j, "scene_token": scene_tok,
                                   "prev": sample_toks[i - 1] if i else "",
                                   "next": sample_toks[i + 1] if i + 1 < len(keys) else ""})
        for ci, chan in enumerate(CAMS):
            prev_c = ""
            for i, (j, st) in enumerate(zip(keys, sample_toks)):
                us = base + 100_000 * j + 8_000 * (ci + 1)
                pose_tok = tok("ego")
                e2g = ego_pose(si, (us - base) * 1e-6)
                tabs["ego_pose"].append({"token": pose_tok, "timestamp": us, "rotation": q(e2g[:3, :3]),
                                         "translation": list(e2g[:3, 3])})
                fname = f"samples/{chan}/{sname}__{chan}__{us}.jpg"
                (root / "samples" / chan).mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (*image_hw, 3), dtype=np.uint8)).save(root / fname)
                sd_tok = tok("sdc")
                if prev_c:
                    tabs["sample_data"][-1]["next"] = sd_tok
                tabs["sample_data"].append({"token": sd_tok, "sample_token": st, "ego_pose_token": pose_tok,
                                            "calibrated_sensor_token": cs_tok[chan], "timestamp": us,
                                            "fileformat": "jpg", "is_key_frame": True, "height": image_hw[0],
                                            "width": image_hw[1], "filename": fname, "prev": prev_c, "next": ""})
                prev_c = sd_tok
        # annotations: an accelerating car, a standing pedestrian, an animal (no detection class)
        objs = [("vehicle.car", lambda t: [120 + 3 * t + 2 * t * t, 45.0, 1.0], [1.9, 4.5, 1.6], 0.2, "vehicle.moving"),
                ("human.pedestrian.adult", lambda t: [110.0, 38.0, 0.9], [0.6, 0.7, 1.8], -1.0, "pedestrian.standing"),
                ("animal", lambda t: [115.0, 30.0, 0.3], [0.3, 0.6, 0.5], 0.0, None)]
        for cat, traj, size, yaw, att in objs:
            inst = tok("ins")
            ann_toks = [tok("ann") for _ in keys]
            for i, (j, st) in enumerate(zip(keys, sample_toks)):
                tabs["sample_annotation"].append({
                    "token": ann_toks[i], "sample_token": st, "instance_token": inst, "visibility_token": "4",
                    "attribute_tokens": [att_tok[att]] if att else [], "translation": traj(0.1 * j), "size": size,
                    "rotation": q(rz(yaw)), "prev": ann_toks[i - 1] if i else "",
                    "next": ann_toks[i + 1] if i + 1 < len(keys) else "", "num_lidar_pts": 3 + i, "num_radar_pts": 0})
            tabs["instance"].append({"token": inst, "category_token": cat_tok[cat], "nbr_annotations": len(keys),
                                     "first_annotation_token": ann_toks[0], "last_annotation_token": ann_toks[-1]})
        tabs["scene"].append({"token": scene_tok, "log_token": log, "nbr_samples": len(keys),
                              "first_sample_token": sample_toks[0], "last_sample_token": sample_toks[-1],
                              "name": sname, "description": ""})
        truth["scenes"][sname] = {"index": si, "key_times": [0.1 * j for j in keys], "sample_tokens": sample_toks}
    tabs["map"].append({"token": tok("map"), "log_tokens": [r["token"] for r in tabs["log"]],
                        "category": "semantic_prior", "filename": "maps/map.png"})
    (root / version).mkdir(parents=True, exist_ok=True)
    for name, records in tabs.items():
        (root / version / f"{name}.json").write_text(json.dumps(records))
    truth["world_label"] = world_label
    return truth


def tiny_kitti_calib():
    from kd3d.structures.calib import KittiCalib

    p2 = np.array([[400.0, 0, 200, 45.0], [0, 400.0, 100, 0.2], [0, 0, 1, 0.003]])
    r0 = rz(0.01)[[0, 2, 1]][:, [0, 2, 1]]  # small rotation about the camera y axis
    tr = np.array([[0, -1, 0, -0.004], [0, 0, -1, -0.076], [1, 0, 0, -0.27]], float)
    tr[:, :3] = tr[:, :3] @ rz(0.02)
    return KittiCalib(P2=p2, R0_rect=r0, Tr_velo_to_cam=tr)


# (type, LiDAR box x y z l w h yaw, truncation, occlusion)
KITTI_OBJECTS = [
    ("Car", [12.0, 1.0, -0.8, 4.0, 1.7, 1.5, 0.3], 0.0, 0),
    ("Pedestrian", [8.0, -2.0, -0.9, 0.6, 0.6, 1.7, -1.0], 0.2, 1),
    ("Cyclist", [20.0, 3.0, -0.9, 1.8, 0.6, 1.7, 2.0], 0.4, 2),
    ("Van", [30.0, -4.0, -0.7, 5.0, 2.0, 2.1, 0.0], 0.0, 0),
]


def write_tiny_kitti(root, *, frames=3, image_hw=(200, 400), seed=0) -> dict:
    """KITTI object layout with ``frames`` training frames (train = all but the last, val = last)."""
    from kd3d.structures.boxes import Boxes3D

    root = Path(root)
    rng = np.random.default_rng(seed)
    calib = tiny_kitti_calib()
    for sub in ("velodyne", "calib", "label_2", "image_2"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(parents=True, exist_ok=True)
    ids = [f"{i:06d}" for i in range(frames)]
    truth = {"boxes": {}, "points": {}, "calib": calib}
    for fid in ids:
        boxes = Boxes3D(np.array([o[1] for o in KITTI_OBJECTS]))
        kb = boxes.to_kitti(calib, image_hw)
        inside = []
        for k in range(len(boxes)):
            local = rng.uniform(-0.45, 0.45, (40, 3)) * boxes.dims[k]
            inside.append(local @ rz(boxes.yaw[k]).T + boxes.center[k])
        bg = rng.uniform([-30, -30, -2], [40, 30, -1.75], (400, 3))
        xyz = np.concatenate(inside + [bg])
        pts = np.concatenate([xyz, rng.uniform(0, 1, (len(xyz), 1))], 1).astype(np.float32)
        pts.tofile(root / "training" / "velodyne" / f"{fid}.bin")
        (root / "training" / "calib" / f"{fid}.txt").write_text(calib.to_text())
        lines = []
        for k, (name, _, trunc, occ) in enumerate(KITTI_OBJECTS):
            h, w, l = kb.dimensions[k]
            lines.append(f"{name} {trunc:.2f} {occ} {kb.alpha[k]:.6f} " + " ".join(f"{v:.4f}" for v in kb.bbox[k])
                         + f" {h:.4f} {w:.4f} {l:.4f} " + " ".join(f"{v:.6f}" for v in kb.location[k])
                         + f" {kb.rotation_y[k]:.6f}")
        lines.append("DontCare -1 -1 -10 10.0 10.0 30.0 30.0 -1 -1 -1 -1000 -1000 -1000 -10")
        (root / "training" / "label_2" / f"{fid}.txt").write_text("\n".join(lines) + "\n")
        blocks = rng.integers(0, 255, (image_hw[0] // 20, image_hw[1] // 20, 3), dtype=np.uint8)
        Image.fromarray(np.repeat(np.repeat(blocks, 20, 0), 20, 1)).save(root / "training" / "image_2" / f"{fid}.png")
        truth["boxes"][fid], truth["points"][fid] = boxes, pts
    (root / "ImageSets" / "train.txt").write_text("\n".join(ids[:-1]) + "\n")
    (root / "ImageSets" / "val.txt").write_text(ids[-1] + "\n")
    (root / "ImageSets" / "trainval.txt").write_text("\n".join(ids) + "\n")
    return truth
