"""Writers of mmdet3d-style info files for tests (never used by the product).

They follow what mmdet3d's converters compute (``tools/dataset_converters/nuscenes_converter.py``,
``kitti_converter.py``, ``update_infos_to_v2.py``), written here from those definitions and from
the devkit's own API (``NuScenes.get_sample_data``, ``box_velocity``), not from kd3d's loaders,
so that reading the files back with :mod:`kd3d.data.infos` and comparing with kd3d's loaders is a
cross-check of two independent paths.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

# mmdet3d's nuScenes class order (differs from the devkit's) and its category -> class mapping.
MMDET3D_NUSC_CLASSES = ("car", "truck", "trailer", "bus", "construction_vehicle", "bicycle", "motorcycle",
                        "pedestrian", "traffic_cone", "barrier")
_NAME_MAP = {"movable_object.barrier": "barrier", "vehicle.bicycle": "bicycle", "vehicle.bus.bendy": "bus",
             "vehicle.bus.rigid": "bus", "vehicle.car": "car", "vehicle.construction": "construction_vehicle",
             "vehicle.motorcycle": "motorcycle", "human.pedestrian.adult": "pedestrian",
             "human.pedestrian.child": "pedestrian", "human.pedestrian.construction_worker": "pedestrian",
             "human.pedestrian.police_officer": "pedestrian", "movable_object.trafficcone": "traffic_cone",
             "vehicle.trailer": "trailer", "vehicle.truck": "truck"}
MMDET3D_KITTI_CLASSES = ("Pedestrian", "Cyclist", "Car", "Van", "Truck", "Person_sitting", "Tram", "Misc")


def _pose(rec) -> np.ndarray:
    from pyquaternion import Quaternion

    m = np.eye(4)
    m[:3, :3] = Quaternion(rec["rotation"]).rotation_matrix
    m[:3, 3] = rec["translation"]
    return m


def _dump(obj, path) -> Path:
    path = Path(path)
    path.write_bytes(pickle.dumps(obj, protocol=2))  # mmengine's pickle handler default
    return path


def write_nuscenes_infos(dataroot, version: str, out_path, *, layout: str = "1.x", legacy_boxes: bool = False,
                         max_sweeps: int = 10, data_dir: str = "data/nuscenes", negated_translations: bool = False,
                         sweep_poses: bool = True, split: str | None = None) -> Path:
    """Info file of every key frame of ``dataroot/version`` in mmdet3d ``layout`` '1.x' or '0.x'.

    Paths as mmdet3d writes them: 1.x key frames and images by file name, 1.x sweeps and all 0.x
    paths under ``./<data_dir>/`` (mmdet3d's working-dir-relative prefix). ``legacy_boxes``:
    mmdet3d < 1.0 boxes ``x y z w l h (-yaw - pi/2)``; else ``x y z l w h yaw``.
    ``negated_translations``: 1.x ``lidar2cam`` / ``lidar2sensor`` as ``update_infos_to_v2.py``
    wrote them before its fix #2110 (``[R^T, -t]``); ``sweep_poses=False`` leaves out the sweeps'
    ``ego2global`` / ``lidar2ego`` (readers then need ``lidar2sensor``).
    """

    def lidar2x(x2lidar):  # float32, as mmdet3d stores it
        m = np.linalg.inv(x2lidar)
        if negated_translations:
            m[:3, 3] = -x2lidar[:3, 3]
        return m.astype(np.float32).tolist()

    from nuscenes import NuScenes

    nusc = NuScenes(version=version, dataroot=str(dataroot), verbose=False)
    samples = nusc.sample
    if split is not None:
        from nuscenes.utils.splits import create_splits_scenes

        scenes = set(create_splits_scenes()[split])
        samples = [s for s in samples if nusc.get("scene", s["scene_token"])["name"] in scenes]
    infos = []
    for idx, sample in enumerate(samples):
        lsd = nusc.get("sample_data", sample["data"]["LIDAR_TOP"])
        l2e = _pose(nusc.get("calibrated_sensor", lsd["calibrated_sensor_token"]))
        e2g = _pose(nusc.get("ego_pose", lsd["ego_pose_token"]))
        g2l = np.linalg.inv(e2g @ l2e)

        def rel(sd_rec, m):  # sensor of sd_rec -> key-frame LiDAR
            return g2l @ _pose(nusc.get("ego_pose", sd_rec["ego_pose_token"])) @ m

        sweeps, sd = [], lsd
        while len(sweeps) < max_sweeps and sd["prev"]:
            sd = nusc.get("sample_data", sd["prev"])
            s2e = _pose(nusc.get("calibrated_sensor", sd["calibrated_sensor_token"]))
            sweeps.append((sd, s2e, rel(sd, s2e)))
        cams = []
        for chan, tok in sample["data"].items():
            if chan.startswith("CAM"):
                csd = nusc.get("sample_data", tok)
                cs = nusc.get("calibrated_sensor", csd["calibrated_sensor_token"])
                cams.append((chan, csd, cs, rel(csd, _pose(cs))))
        _, boxes, _ = nusc.get_sample_data(lsd["token"])
        anns = [nusc.get("sample_annotation", t) for t in sample["anns"]]
        locs = np.array([b.center for b in boxes]).reshape(-1, 3)
        wlh = np.array([b.wlh for b in boxes]).reshape(-1, 3)
        yaw = np.array([b.orientation.yaw_pitch_roll[0] for b in boxes]).reshape(-1, 1)
        gt = (np.concatenate([locs, wlh, -yaw - np.pi / 2], 1) if legacy_boxes
              else np.concatenate([locs, wlh[:, [1, 0, 2]], yaw], 1))
        vel = np.array([nusc.box_velocity(a["token"]) for a in anns]).reshape(-1, 3)
        vel = (vel @ g2l[:3, :3].T)[:, :2]  # global -> LiDAR rotation only
        cats = [nusc.get("category", nusc.get("instance", a["instance_token"])["category_token"])["name"] for a in anns]
        names = [_NAME_MAP.get(c, c) for c in cats]
        nl = np.array([a["num_lidar_pts"] for a in anns], np.int64)
        nr = np.array([a["num_radar_pts"] for a in anns], np.int64)
        if layout == "0.x":
            def q(m):
                from pyquaternion import Quaternion
                return list(Quaternion(matrix=m[:3, :3]).elements)

            infos.append({
                "lidar_path": f"./{data_dir}/{lsd['filename']}", "token": sample["token"], "sweeps": [
                    {"data_path": f"./{data_dir}/{s['filename']}", "type": "lidar", "sample_data_token": s["token"],
                     "sensor2ego_translation": m[:3, 3], "sensor2ego_rotation": q(m), "timestamp": s["timestamp"],
                     "sensor2lidar_rotation": r[:3, :3], "sensor2lidar_translation": r[:3, 3]} for s, m, r in sweeps],
                "cams": {chan: {"data_path": f"./{data_dir}/{c['filename']}", "type": chan, "timestamp": c["timestamp"],
                                "sample_data_token": c["token"], "cam_intrinsic": np.array(cs["camera_intrinsic"]),
                                "sensor2lidar_rotation": r[:3, :3], "sensor2lidar_translation": r[:3, 3]}
                         for chan, c, cs, r in cams},
                "lidar2ego_translation": l2e[:3, 3].tolist(), "lidar2ego_rotation": q(l2e),
                "ego2global_translation": e2g[:3, 3].tolist(), "ego2global_rotation": q(e2g),
                "timestamp": sample["timestamp"], "gt_boxes": gt, "gt_names": np.array(names),
                "gt_velocity": vel, "num_lidar_pts": nl, "num_radar_pts": nr, "valid_flag": (nl + nr) > 0})
            continue
        infos.append({
            "sample_idx": idx, "token": sample["token"], "timestamp": sample["timestamp"] / 1e6,
            "ego2global": e2g.tolist(),
            "lidar_points": {"num_pts_feats": 5, "lidar_path": Path(lsd["filename"]).name, "lidar2ego": l2e.tolist()},
            "lidar_sweeps": [{"timestamp": s["timestamp"] / 1e6, "sample_data_token": s["token"],
                              **({"ego2global": _pose(nusc.get("ego_pose", s["ego_pose_token"])).tolist()}
                                 if sweep_poses else {}),
                              "lidar_points": {"lidar_path": f"{data_dir}/{s['filename']}", "lidar2sensor": lidar2x(r),
                                               **({"lidar2ego": m.tolist()} if sweep_poses else {})}}
                             for s, m, r in sweeps],
            "images": {chan: {"img_path": Path(c["filename"]).name, "cam2img": cs["camera_intrinsic"],
                              "sample_data_token": c["token"], "timestamp": c["timestamp"] / 1e6,
                              "cam2ego": _pose(cs).tolist(),
                              "lidar2cam": lidar2x(r)} for chan, c, cs, r in cams},
            "instances": [{"bbox_3d": gt[i].tolist(), "bbox_label": lab, "bbox_label_3d": lab,
                           "velocity": vel[i].tolist(), "num_lidar_pts": int(nl[i]), "num_radar_pts": int(nr[i]),
                           "bbox_3d_isvalid": bool(nl[i] + nr[i] > 0)}
                          for i, lab in enumerate(MMDET3D_NUSC_CLASSES.index(n) if n in MMDET3D_NUSC_CLASSES else -1
                                                  for n in names)]})
    if layout == "0.x":
        return _dump({"infos": infos, "metadata": {"version": version}}, out_path)
    cats = {c: i for i, c in enumerate(MMDET3D_NUSC_CLASSES)}
    return _dump({"metainfo": {"categories": cats, "dataset": "nuscenes", "version": version, "info_version": "1.1"},
                  "data_list": infos}, out_path)


def write_kitti_infos(root, split: str, out_path, *, layout: str = "1.x") -> Path:
    """Info file of a KITTI split (``root/ImageSets/<split>.txt``, ``training/``) in mmdet3d
    ``layout``: camera-frame bottom-centre boxes with sizes l h w; ``num_lidar_pts`` counted in
    the rectified camera frame (independent of kd3d's LiDAR-frame box test)."""
    root = Path(root)
    ids = (root / "ImageSets" / f"{split}.txt").read_text().split()
    infos = []
    for fid in ids:
        calib = {}
        for line in (root / "training" / "calib" / f"{fid}.txt").read_text().splitlines():
            key, _, rest = line.partition(":")
            if rest.strip():
                calib[key.strip()] = np.array([float(v) for v in rest.split()])
        ext = {}
        for key in ("P0", "P1", "P2", "P3", "Tr_velo_to_cam", "Tr_imu_to_velo"):
            ext[key] = np.eye(4)
            ext[key][:3] = calib[key].reshape(3, 4)
        ext["R0_rect"] = np.eye(4)
        ext["R0_rect"][:3, :3] = calib["R0_rect"].reshape(3, 3)
        velo = np.fromfile(root / "training" / "velodyne" / f"{fid}.bin", np.float32).reshape(-1, 4)
        rect2velo = np.linalg.inv(ext["R0_rect"] @ ext["Tr_velo_to_cam"])
        rows = [ln.split() for ln in (root / "training" / "label_2" / f"{fid}.txt").read_text().splitlines() if ln]
        names = [r[0] for r in rows]
        v = np.array([[float(x) for x in r[1:15]] for r in rows]).reshape(-1, 14)
        hwl, loc, ry = v[:, 7:10], v[:, 10:13], v[:, 13]
        lhw = hwl[:, [2, 0, 1]]
        npts = []
        for j in range(len(rows)):  # mmdet3d's count: LiDAR box from -ry - pi/2, bottom centre, yaw only
            bottom = rect2velo[:3, :3] @ loc[j] + rect2velo[:3, 3]
            yaw = -ry[j] - np.pi / 2
            d = velo[:, :3] - bottom
            c, s = np.cos(yaw), np.sin(yaw)
            lx, ly = c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]
            inside = ((np.abs(lx) <= lhw[j, 0] / 2) & (np.abs(ly) <= lhw[j, 2] / 2)
                      & (d[:, 2] >= 0) & (d[:, 2] <= lhw[j, 1]))
            npts.append(-1 if names[j] == "DontCare" else int(inside.sum()))
        with Image.open(root / "training" / "image_2" / f"{fid}.png") as im:
            shape = (im.height, im.width)
        if layout == "0.x":
            infos.append({"image": {"image_idx": int(fid), "image_path": f"training/image_2/{fid}.png",
                                    "image_shape": np.array(shape, np.int32)},
                          "point_cloud": {"num_features": 4, "velodyne_path": f"training/velodyne/{fid}.bin"},
                          "calib": ext,
                          "annos": {"name": np.array(names), "truncated": v[:, 0], "occluded": v[:, 1].astype(np.int64),
                                    "alpha": v[:, 2], "bbox": v[:, 3:7], "dimensions": lhw, "location": loc,
                                    "rotation_y": ry, "num_points_in_gt": np.array(npts, np.int32)}})
            continue
        lab = [MMDET3D_KITTI_CLASSES.index(n) if n in MMDET3D_KITTI_CLASSES else -1 for n in names]
        infos.append({
            "sample_idx": int(fid),
            "images": {**{f"CAM{k}": {"cam2img": ext[f"P{k}"].tolist()} for k in range(4)},
                       "R0_rect": ext["R0_rect"].astype(np.float32).tolist()},
            "lidar_points": {"num_pts_feats": 4, "lidar_path": f"{fid}.bin",
                             "Tr_velo_to_cam": ext["Tr_velo_to_cam"].astype(np.float32).tolist(),
                             "Tr_imu_to_velo": ext["Tr_imu_to_velo"].astype(np.float32).tolist()},
            "instances": [{"bbox": v[j, 3:7].tolist(), "bbox_label": lab[j], "bbox_label_3d": lab[j],
                           "bbox_3d": [*loc[j], *lhw[j], ry[j]], "truncated": float(v[j, 0]),
                           "occluded": int(v[j, 1]), "alpha": float(v[j, 2]), "num_lidar_pts": npts[j]}
                          for j in range(len(rows))]})
        infos[-1]["images"]["CAM2"].update({"img_path": f"{fid}.png", "height": shape[0], "width": shape[1]})
    if layout == "0.x":
        return _dump(infos, out_path)
    cats = {c: i for i, c in enumerate(MMDET3D_KITTI_CLASSES)}
    cats["DontCare"] = -1
    return _dump({"metainfo": {"categories": cats, "dataset": "kitti", "info_version": "1.1"}, "data_list": infos},
                 out_path)
