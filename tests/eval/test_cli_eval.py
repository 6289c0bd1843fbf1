"""``kd3d eval`` end to end through the console-script dispatcher."""
import json

import numpy as np
import pytest

from kd3d.cli.main import main
from kd3d.testing.kitti_cases import write_kitti_case


def test_kitti_command(tmp_path, capsys):
    g, r, s = write_kitti_case(tmp_path, 12, seed=5)
    rc = main(["eval", "kitti", "--gt-dir", str(g), "--result-dir", str(r), "--split-file", str(s),
               "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "Car AP_R40@0.70, 0.70, 0.70:" in text and "aos  AP:" in text
    data = json.loads((tmp_path / "out" / "kitti_metrics.json").read_text())
    assert set(data["table"]["Car"]) == {"bbox", "bev", "3d", "aos"}


def test_kitti_command_bad_input(tmp_path, capsys):
    rc = main(["eval", "kitti", "--gt-dir", str(tmp_path / "nope"), "--result-dir", str(tmp_path)])
    assert rc == 2 and "label folder not found" in capsys.readouterr().err


def test_nuscenes_and_lidarseg_commands(tiny_nusc, tmp_path, capsys):
    from kd3d.eval.formats import write_submission
    from kd3d.eval.nuscenes_gt import load_gt, split_sample_tokens
    from kd3d.eval.nuscenes_seg import write_predictions

    nusc, summary = tiny_nusc
    tokens = split_sample_tokens(nusc, "mini_val")
    gt = load_gt(nusc, tokens)
    gt.velocity[:] = np.nan_to_num(gt.velocity)
    gt.score[:] = 0.5
    write_submission(tmp_path / "r.json", gt)
    common = ["--dataroot", summary["dataroot"], "--version", summary["version"], "--split", "mini_val", "--quiet"]
    assert main(["eval", "nuscenes", *common, "--results", str(tmp_path / "r.json"), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "NDS:" in out
    summary_json = json.loads((tmp_path / "o" / "metrics_summary.json").read_text())
    assert summary_json["mean_ap"] > 0.5  # GT as predictions
    sds = [nusc.get("sample", t)["data"]["LIDAR_TOP"] for t in tokens]
    preds = [np.full(len(np.fromfile(f"{summary['dataroot']}/{nusc.get('lidarseg', sd)['filename']}", np.uint8)), 11)
             for sd in sds]
    write_predictions(tmp_path / "seg", "mini_val", sds, preds)
    assert main(["eval", "lidarseg", *common, "--results", str(tmp_path / "seg")]) == 0
    assert "mIoU" in capsys.readouterr().out
    assert main(["eval", "nuscenes", *common, "--results", str(tmp_path / "missing.json")]) == 2
