"""Write synthetic frames as a real-format KITTI object dataset.

Layout under ``out_dir``::

    training/velodyne/000000.bin   (N, 4) float32 x y z reflectance (0..1), Velodyne frame
    training/image_2/000000.png    left colour camera
    training/calib/000000.txt      P0..P3, R0_rect, Tr_velo_to_cam, Tr_imu_to_velo
    training/label_2/000000.txt    type truncated occluded alpha x1 y1 x2 y2 h w l x y z ry
    ImageSets/{train,val,trainval}.txt

Each frame is an independent snapshot of its own procedural street (Velodyne HDL-64E-like,
64 beams, 1.73 m above the ground, x forward / y left / z up). Only objects seen by camera 2
are labelled, with KITTI types from the scene objects (Car/Van, Truck, Pedestrian /
Person_sitting, Cyclist = bicycle with rider, Misc and Tram for other vehicles); traffic cones,
barriers and parked bicycles are not labelled, as in KITTI. ``truncated`` is the fraction of the
projected 2D box outside the image, ``occluded`` 0/1/2 from the visible fraction of the
object's pixels in the z-buffer (>= 0.8 / >= 0.4 / less); objects whose 2D box is under
``dontcare_px`` pixels tall (scaled with the image) or farther than 60 m become DontCare.
"""
from __future__ import annotations

import time

import numpy as np

from kd3d.data.kitti_format import dontcare_line, format_label_line, write_split_file
from kd3d.data.synth import rig
from kd3d.data.synth.camera import render
from kd3d.data.synth.lidar import KITTI_LIDAR, cast_sweep
from kd3d.data.synth.output import prepare_out_dir, save_png
from kd3d.data.synth.scene import SynthScene
from kd3d.structures.boxes import Boxes3D

KITTI_SCENE_OFFSET = 100_000  # scene indices of KITTI frames (distinct from nuScenes scenes)
VELO_TO_EGO = (1.0, 0.0, rig.KITTI_VELO_HEIGHT)


def kitti_type(obj) -> str | None:
    """KITTI type of a scene object (None: not labelled)."""
    cat = obj.category
    if cat == "vehicle.car":
        return "Van" if obj.lwh[2] > 1.88 else "Car"
    if cat == "vehicle.truck":
        return "Truck"
    if cat == "vehicle.bus.bendy":
        return "Tram"
    if cat in ("vehicle.bus.rigid", "vehicle.trailer", "vehicle.construction", "vehicle.motorcycle"):
        return "Misc"
    if cat.startswith("human.pedestrian"):
        return "Person_sitting" if obj.attribute == "pedestrian.sitting_lying_down" else "Pedestrian"
    if cat == "vehicle.bicycle" and obj.attribute == "cycle.with_rider":
        return "Cyclist"
    return None


def kitti_frame(seed: int, index: int) -> tuple[SynthScene, float, np.ndarray]:
    """World model, time and 4x4 Velodyne -> global pose of KITTI frame ``index``."""
    scene = SynthScene(seed, KITTI_SCENE_OFFSET + index, duration=2.0)
    t = float(np.random.default_rng([seed, index, 17]).uniform(0.0, 2.0))
    velo2ego = np.eye(4)
    velo2ego[:3, 3] = VELO_TO_EGO
    return scene, t, scene.ego_pose(t) @ velo2ego


def generate_kitti(out_dir, *, frames: int = 20, seed: int = 0, image_size: tuple[int, int] = (1242, 375),
                   val_fraction: float = 0.5, dontcare_px: float = 15.0, overwrite: bool = False,
                   progress: bool = True) -> dict:
    """Generate ``frames`` KITTI training frames under ``out_dir``; returns a summary dict.

    ``image_size`` (W, H): the intrinsics are the real KITTI ones scaled to it.
    """
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    width, height = (int(v) for v in image_size)
    if width < 16 or height < 16:
        raise ValueError(f"image_size must be at least 16x16, got {image_size}")
    root = prepare_out_dir(out_dir, ("training", "ImageSets"), overwrite)
    for sub in ("velodyne", "image_2", "calib", "label_2"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    (root / "ImageSets").mkdir(exist_ok=True)
    calib = rig.kitti_calib(width, height)
    cam2velo, K = rig.kitti_camera(calib)
    start = time.time()
    counts: dict[str, int] = {}
    iterator = range(frames)
    if progress:
        from tqdm import tqdm

        iterator = tqdm(iterator, desc="synth KITTI", unit="frame")
    for i in iterator:
        scene, t, velo2global = kitti_frame(seed, i)
        name = f"{i:06d}"
        sweep = cast_sweep(scene, t, velo2global, KITTI_LIDAR, np.random.default_rng([seed, i, 1]), with_ego=False)
        sweep["points"][:, :4].tofile(root / "training" / "velodyne" / f"{name}.bin")
        out = render(scene, t, velo2global @ cam2velo, K, width, height, np.random.default_rng([seed, i, 2]))
        save_png(root / "training" / "image_2" / f"{name}.png", out["image"])
        (root / "training" / "calib" / f"{name}.txt").write_text(calib.to_text())
        lines = _labels(scene, t, velo2global, calib, out, (height, width), dontcare_px * height / 375.0)
        for line in lines:
            counts[line.split(" ", 1)[0]] = counts.get(line.split(" ", 1)[0], 0) + 1
        (root / "training" / "label_2" / f"{name}.txt").write_text("".join(line + "\n" for line in lines))
    n_val = 0 if frames < 2 else max(1, int(round(frames * val_fraction)))
    ids = [f"{i:06d}" for i in range(frames)]
    split = {"train": ids[: frames - n_val], "val": ids[frames - n_val:], "trainval": ids}
    for key, items in split.items():
        write_split_file(root / "ImageSets" / f"{key}.txt", items)
    elapsed = time.time() - start
    return {"format": "kitti", "root": str(root), "frames": frames, "train": len(split["train"]),
            "val": len(split["val"]), "objects": counts, "seconds": elapsed, "seconds_per_frame": elapsed / frames}


def _labels(scene, t, velo2global, calib, render_out, image_shape, dontcare_h) -> list[str]:
    boxes = scene.object_boxes(t)
    if len(boxes) == 0:
        return []
    velo = Boxes3D(boxes).transform(np.linalg.inv(velo2global))
    kb = velo.to_kitti(calib, image_shape=image_shape)
    corners = velo.corners().reshape(-1, 3)
    corners_rect = (np.c_[corners, np.ones(len(corners))] @ calib.velo_to_rect.T)[:, :3].reshape(-1, 8, 3)
    full = calib.project_rect_to_bbox(corners_rect, None)
    lines = []
    for i, obj in enumerate(scene.objects):
        typ = kitti_type(obj)
        total = render_out["total_px"].get(i, 0)
        depth = kb.location[i, 2]
        if typ is None or total == 0 or depth < 0.5 or depth > 70.0:
            continue
        x1, y1, x2, y2 = kb.bbox[i]
        if x2 <= x1 or y2 <= y1:
            continue
        fa = max((full[i, 2] - full[i, 0]) * (full[i, 3] - full[i, 1]), 1e-9)
        trunc = float(np.clip(1.0 - (x2 - x1) * (y2 - y1) / fa, 0.0, 1.0))
        if np.any(corners_rect[i, :, 2] < 0.1):
            trunc = max(trunc, 0.5)
        frac = render_out["visible_px"].get(i, 0) / total
        occ = 0 if frac >= 0.8 else 1 if frac >= 0.4 else 2
        if (y2 - y1) < dontcare_h or depth > 60.0:
            lines.append(dontcare_line(kb.bbox[i]))
            continue
        lines.append(format_label_line(typ, trunc, occ, kb.alpha[i], kb.bbox[i], kb.dimensions[i], kb.location[i],
                                       kb.rotation_y[i]))
    return lines
