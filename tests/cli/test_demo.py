"""`kd3d demo`: the data stage end to end on a tiny dataset, stage parsing, and idempotence."""
import numpy as np
import pytest
from PIL import Image

from kd3d.cli.main import main


def test_demo_data_stage_writes_summary_and_pictures(tmp_path, capsys):
    out = tmp_path / "demo"
    args = ["demo", "--stages", "data", "--out", str(out), "--scenes", "2", "--samples-per-scene", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "generated 4 key frames" in text and "boxes per class" in text and "load throughput" in text
    for name in ("scene.png", "cameras.png"):
        img = np.asarray(Image.open(out / name).convert("RGB"))
        assert img.shape[0] > 100 and img.shape[1] > 100
        assert (img.reshape(-1, 3).std(0) > 10).all(), f"{name} looks blank"
    assert (out / "nuscenes" / "v1.0-mini" / "sample.json").is_file()
    assert main(args) == 0  # second run re-uses the generated dataset
    assert "re-using" in capsys.readouterr().out


def test_demo_rejects_unknown_stage_and_missing_data(tmp_path):
    with pytest.raises(SystemExit, match="unknown stage"):
        main(["demo", "--stages", "data,fly", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="no dataset"):
        main(["demo", "--stages", "train", "--out", str(tmp_path / "empty")])


def test_demo_trains_the_calibrated_recipe_and_says_what_it_shortened(tmp_path, capsys):
    import torch

    out = tmp_path / "demo"
    common = ["--out", str(out), "--scenes", "2", "--samples-per-scene", "2"]
    assert main(["demo", "--stages", "data", *common]) == 0
    capsys.readouterr()
    assert main(["demo", "--stages", "train,distill", *common, "--teacher-steps", "2", "--student-steps", "2"]) == 0
    text = capsys.readouterr().out
    assert "one 3x3 conv per camera head branch" in text and ">= 1 LiDAR point" in text
    # 2 scenes: 1 mini_train scene of 2 key frames
    assert "bench/lidar_teacher: 2 steps instead of 1200, 2 training frames instead of 256" in text
    assert "bench/camera_student: 2 steps instead of 1500" in text
    assert "bench/camera_bevdistill: 2 steps instead of 1500" in text
    for run in ("camera_student", "camera_bevdistill"):
        last = sorted((out / "work" / run / "checkpoints").glob("ckpt_step*.pth"))[-1]
        ckpt = torch.load(last, weights_only=True, map_location="cpu")
        state = ckpt.get("student") or ckpt.get("model") or ckpt["state_dict"]
        head = [k for k in state if ".task_heads.0.heatmap." in k]
        assert head and all(".heatmap.0." in k for k in head), head  # one conv per branch
