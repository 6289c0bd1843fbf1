"""`kd3d vis` end to end on a generated real-format nuScenes dataset."""
import json

import numpy as np
import pytest
from PIL import Image

from kd3d.cli.main import main
from kd3d.data.nuscenes import NuScenesDataset
from kd3d.vis.bev import bev_pixels, ego_forward_yaw
from kd3d.vis.colors import CLASS_COLORS


def _args(ds, *extra):
    return ["--dataroot", ds["dataroot"], "--version", ds["version"], "--sweeps", "2", "--sample-idx", "1", *extra]


def _color_near(img, uv, color, r=3, tol=12):
    u, v = int(round(uv[0])), int(round(uv[1]))
    patch = img[max(v - r, 0):v + r + 1, max(u - r, 0):u + r + 1].reshape(-1, 3).astype(int)
    return bool(len(patch)) and bool((np.abs(patch - np.asarray(color)).max(1) <= tol).any())


@pytest.fixture(scope="module")
def loaded(vis_nusc):
    ds = NuScenesDataset(vis_nusc["dataroot"], vis_nusc["version"], "all", sweeps=2, load_images=False)
    return ds[1]


def test_scene_with_results(vis_nusc, loaded, tmp_path):
    from kd3d.eval.formats import boxes_from_kd3d, write_submission

    s = loaded
    car = int(np.flatnonzero(s.gt_labels == 0)[np.argmin(np.linalg.norm(s.gt_boxes.center[s.gt_labels == 0, :2], axis=1))])
    shifted = s.gt_boxes[[car]].translate([0.0, 0.0, 0.0]).copy()
    shifted.data[0, 0:2] += np.array([np.cos(shifted.yaw[0] + np.pi / 2), np.sin(shifted.yaw[0] + np.pi / 2)]) * 6
    sub = boxes_from_kd3d([s.token], [shifted], [np.array([0.8])], [np.array([1])], [s.lidar2ego], [s.ego2global])
    results = write_submission(tmp_path / "results.json", sub)
    out = tmp_path / "bev.png"
    r = 30.0
    assert main(["vis", "scene", *_args(vis_nusc, "--results", str(results), "--range", str(r),
                                         "--resolution", "0.1", "--color-by", "none", "--out", str(out))]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (600, 600, 3)
    a = -ego_forward_yaw(s.lidar2ego)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    # the predicted truck (truck colour), converted global -> LiDAR, lands at its corners
    for xy in shifted.bev_corners()[0]:
        assert _color_near(img, bev_pixels((rot @ xy)[None], (-r, -r, r, r), 0.1)[0], CLASS_COLORS[1]), xy
    for xy in s.gt_boxes.bev_corners()[car]:  # the GT car in the car colour
        assert _color_near(img, bev_pixels((rot @ xy)[None], (-r, -r, r, r), 0.1)[0], CLASS_COLORS[0]), xy


def test_cameras_html_export_show(vis_nusc, tmp_path, capsys):
    cams = tmp_path / "cams.png"
    assert main(["vis", "cameras", *_args(vis_nusc, "--tile-width", "192", "--out", str(cams))]) == 0
    img = np.asarray(Image.open(cams).convert("RGB"))
    assert img.shape == (2 * 108, 3 * 192, 3)
    assert (np.abs(img.reshape(-1, 3).astype(int) - CLASS_COLORS[0]).max(1) <= 10).sum() > 30  # projected cars
    page = tmp_path / "s.html"
    assert main(["vis", "html", *_args(vis_nusc, "--max-points", "5000", "--out", str(page))]) == 0
    text = page.read_text()
    payload = json.loads(text.split('type="application/json">', 1)[1].split("</script>", 1)[0])
    assert payload["n"] == 5000 and len(payload["boxes"]) > 0
    import os
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        assert main(["vis", "show", *_args(vis_nusc)]) == 2
        assert "no display" in capsys.readouterr().out


def test_export_cli(vis_nusc, tmp_path):
    o3d = pytest.importorskip("open3d", reason="open3d is not installed (pip install 'kd3d[vis]')")
    ply = tmp_path / "scene.ply"
    assert main(["vis", "export", *_args(vis_nusc, "--color-by", "time", "--out", str(ply))]) == 0
    ds = NuScenesDataset(vis_nusc["dataroot"], vis_nusc["version"], "all", sweeps=2, load_images=False)
    s = ds[1]
    pc = o3d.io.read_point_cloud(str(ply))
    np.testing.assert_allclose(np.asarray(pc.points), s.points[:, :3], atol=1e-5)
    lines = o3d.io.read_line_set(str(tmp_path / "scene_gt_boxes.ply"))
    assert len(np.asarray(lines.lines)) == 13 * len(s.gt_boxes)


def test_distill_from_npz_and_sample(vis_nusc, tmp_path):
    t = np.zeros((4, 32, 32), np.float32)
    t[:, 8, 24] = 5
    maps = tmp_path / "maps.npz"
    hm = np.full((1, 32, 32), -9.0, np.float32)
    hm[0, 8, 24] = 9.0
    np.savez(maps, teacher=t, student=t * 0.5, teacher_heatmap=hm, mask_fg=t[0] > 0,
             grid=np.array([-16, -16, 16, 16, 1, 1], np.float64))
    out = tmp_path / "d.png"
    assert main(["vis", "distill", "--maps", str(maps), "--mode", "mean", "--out", str(out)]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    from kd3d.vis.distill import tile_origin

    y0, x0 = tile_origin(3, 256, 4)
    # heatmap tile (index 3) is bright at the displayed peak: row 8, col 24 -> (u, v) = (32-8.5, 32-24.5) * 8
    u, v = int(x0 + (32 - 8.5) * 8), int(y0 + (32 - 24.5) * 8)
    assert img[v, u].astype(int).sum() > 500 and img[y0 + 200, x0 + 30].astype(int).sum() < 60
    out2 = tmp_path / "d2.png"
    assert main(["vis", "distill", "--dataroot", vis_nusc["dataroot"], "--version", vis_nusc["version"],
                 "--range", "25.6", "--cell", "0.8", "--out", str(out2)]) == 0
    assert out2.is_file()
    with pytest.raises(SystemExit, match="lacks 'student'"):
        bad = tmp_path / "bad.npz"
        np.savez(bad, teacher=t)
        main(["vis", "distill", "--maps", str(bad), "--out", str(out)])


def test_eval_plots_cli(tmp_path):
    from nuscenes.eval.detection.data_classes import DetectionMetricData, DetectionMetricDataList

    mdl = DetectionMetricDataList()
    for d in (0.5, 1.0, 2.0, 4.0):
        mdl.set("car", d, DetectionMetricData.no_predictions())
    (tmp_path / "metrics_details.json").write_text(json.dumps(mdl.serialize()))
    assert main(["vis", "eval", "--metrics-dir", str(tmp_path), "--out-dir", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "pr_curves.png").is_file() and (tmp_path / "p" / "tp_curves.png").is_file()


def test_bad_sample_index(vis_nusc):
    with pytest.raises(SystemExit, match="sample-idx 99"):
        main(["vis", "scene", "--dataroot", vis_nusc["dataroot"], "--version", vis_nusc["version"],
              "--sample-idx", "99", "--out", "/tmp/never.png"])


DISTILL_CONFIG = '''
from kd3d.distill.config import DistillConfig
from kd3d.engine.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig
from kd3d.testing.toy import TOY_DATASET, TOY_EVALUATOR, TOY_MODEL

DISTILL = DistillConfig(method="bevdistill", teacher_model=TOY_MODEL, teacher_kwargs={"channels": 8, "dropout": 0.0},
                        method_kwargs={"student_channels": 4, "teacher_channels": 8, "instance_weight": 0,
                                       "feature_key": "bev_neck",
                                       "prediction_weight": 0}, allow_untrained_teacher=True)
CONFIG = ExperimentConfig(name="toy_distill", data=DataConfig(dataset=TOY_DATASET, val_split="val",
                                                              kwargs={"num_samples": 2}),
                          model=ModelConfig(name=TOY_MODEL, kwargs={"channels": 4, "dropout": 0.0}),
                          eval=EvalConfig(evaluator=TOY_EVALUATOR), distill=DISTILL)
'''


def test_distill_from_config_and_checkpoint(tmp_path):
    import torch

    cfg = tmp_path / "toy_distill.py"
    cfg.write_text(DISTILL_CONFIG)
    out = tmp_path / "live.png"
    assert main(["vis", "distill", "--config", str(cfg), "--sample-idx", "1", "--mode", "mean", "--out", str(out)]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    from kd3d.vis.distill import GAP_PX

    assert img.shape[1] == 4 * 256 + 3 * GAP_PX and img.std() > 5
    # a checkpoint of another architecture is refused with a readable error
    torch.save({"model": {"student.conv1.weight": torch.zeros(1)}}, tmp_path / "bad.pth")
    with pytest.raises(SystemExit, match="bad.pth"):
        main(["vis", "distill", "--config", str(cfg), "--checkpoint", str(tmp_path / "bad.pth"), "--out", str(out)])


def test_distill_config_loads_matching_checkpoint(tmp_path):
    import torch

    from kd3d.engine.builders import build_train_module
    from kd3d.models.build import build_model
    from kd3d.engine.config import load_config

    cfg_path = tmp_path / "toy_distill.py"
    cfg_path.write_text(DISTILL_CONFIG)
    cfg = load_config(str(cfg_path))
    module = build_train_module(cfg, build_model(cfg.model))
    torch.save({"model": module.state_dict()}, tmp_path / "ok.pth")
    out = tmp_path / "ok.png"
    assert main(["vis", "distill", "--config", str(cfg_path), "--checkpoint", str(tmp_path / "ok.pth"),
                 "--term", "bevdistill/dense", "--out", str(out)]) == 0
    assert out.is_file()


def test_kitti_scene_and_camera_colors_by_class_name(vis_kitti, tmp_path):
    from kd3d.data.kitti import KittiDataset
    from kd3d.vis.colors import class_color

    assert class_color(1, ("Car", "Pedestrian", "Cyclist")) == tuple(CLASS_COLORS[5])
    assert class_color(2, ("Car", "Pedestrian", "Cyclist")) == tuple(CLASS_COLORS[7])
    ds = KittiDataset(vis_kitti["root"], "train", load_images=False)
    s = ds[0]
    assert len(s.gt_boxes) and (s.gt_labels == 1).any(), "the generated frame should hold pedestrians"
    out = tmp_path / "k.png"
    r = 40.0
    assert main(["vis", "scene", "--format", "kitti", "--dataroot", vis_kitti["root"], "--range", str(r),
                 "--color-by", "none", "--out", str(out)]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    a = -ego_forward_yaw(s.lidar2ego)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    for i in np.flatnonzero((s.gt_labels == 1) & (np.abs(s.gt_boxes.center[:, :2]) < r - 1).all(1))[:3]:
        c = bev_pixels((rot @ s.gt_boxes.bev_corners()[i, 0])[None], (-r, -r, r, r), 0.1)[0]
        assert _color_near(img, c, CLASS_COLORS[5], r=2), i
    cams = tmp_path / "kc.png"
    assert main(["vis", "cameras", "--format", "kitti", "--dataroot", vis_kitti["root"], "--tile-width", "414",
                 "--out", str(cams)]) == 0
    assert np.asarray(Image.open(cams)).shape == (125, 414, 3)  # one camera, one tile


def test_load_predictions_frames(sample, tmp_path):
    """Results (global frame) come back in the sample's LiDAR frame, BEV augmentation included."""
    import dataclasses

    from kd3d.cli.vis import load_predictions
    from kd3d.eval.formats import boxes_from_kd3d, write_submission
    from kd3d.structures.geometry import pose_matrix, rotation_z

    l2e = pose_matrix(rotation_z(np.pi / 2), [0.9, 0.0, 1.8])
    e2g = pose_matrix(rotation_z(0.3), [100.0, 50.0, 0.0])
    s = dataclasses.replace(sample, lidar2ego=l2e, ego2global=e2g)
    sub = boxes_from_kd3d([s.token], [s.gt_boxes], [np.array([0.9, 0.8])], [np.array([0, 5])], [l2e], [e2g])
    path = write_submission(tmp_path / "r.json", sub)
    got = load_predictions(path, s)
    np.testing.assert_allclose(got["boxes"].data[:, :7], s.gt_boxes.data[:, :7], atol=1e-6)
    assert got["labels"].tolist() == [0, 5] and np.allclose(got["scores"], [0.9, 0.8])
    aug = pose_matrix(rotation_z(0.4), [1.0, -2.0, 0.0])
    got = load_predictions(path, dataclasses.replace(s, bev_aug=aug))
    np.testing.assert_allclose(got["boxes"].data[:, :6], s.gt_boxes.transform(aug).data[:, :6], atol=1e-6)
