"""Source decode settings on hand-built head outputs, the foreign-file loader, and `kd3d convert` end to end."""
from __future__ import annotations

import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from kd3d.cli.main import main
from kd3d.interop.decode import SourceDecode, circle_nms_sq, source_decode, to_source_boxes
from kd3d.interop.mapping import _Opaque, load_foreign
from kd3d.models.heads.center_head import CenterHead
from kd3d.ops.nms import circle_nms
from kd3d.structures.bev import BEVGrid

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mmdet3d"
GRID = BEVGrid(-8.0, -8.0, 8.0, 8.0, 1.0, 1.0)  # 16 x 16 cells of 1 m


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def one_task_preds(peaks: dict, base=-20.0):
    """A 1-task, 1-class head output: heat logits ``base`` except ``peaks`` {(row, col): logit};
    reg: offset 0.5, z 1 m, dims (4, 2, 1.5), yaw 0, no velocity."""
    heat = torch.full((1, 1, 16, 16), base)
    for (i, j), v in peaks.items():
        heat[0, 0, i, j] = v
    reg = torch.zeros(1, 10, 16, 16)
    reg[:, 0:2] = 0.5
    reg[:, 2] = 1.0
    reg[:, 3:6] = torch.log(torch.tensor([4.0, 2.0, 1.5]))[:, None, None]
    reg[:, 7] = 1.0  # cos
    return {"heatmaps": [heat], "regs": [reg]}


def head():
    return CenterHead(in_channels=4, tasks=[["car"]], grid=GRID)


def test_circle_nms_squared_radius_with_le_vs_kd3d():
    xy = np.array([[0.0, 0.0], [2.0, 0.0]], dtype=np.float32)  # exactly 2 m apart
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert circle_nms_sq(xy, scores, 4.0, 83).tolist() == [0]  # mmdet3d: 2^2 <= 4 suppresses
    assert circle_nms(xy, scores, 2.0).tolist() == [0, 1]  # kd3d's own: distance < 2 m only
    assert circle_nms_sq(xy, scores, 3.99, 83).tolist() == [0, 1]
    assert circle_nms_sq(np.zeros((5, 2), np.float32) + np.arange(5)[:, None] * 10, np.linspace(1, 0.5, 5), 1.0,
                         3).tolist() == [0, 1, 2]  # post_max


def test_strict_threshold_top_k_range_and_bottom_z():
    lg = logit(0.3)
    assert float(torch.sigmoid(torch.tensor(lg, dtype=torch.float32))) == pytest.approx(0.3, abs=1e-7)
    h = head()
    # (row, col) cells: two far apart at p > 0.3, one at exactly sigmoid(lg), one outside the range
    preds = one_task_preds({(2, 2): logit(0.9), (12, 12): logit(0.8), (7, 7): lg, (15, 0): logit(0.7)})
    exact = float(torch.sigmoid(torch.tensor(lg, dtype=torch.float32)))
    s = SourceDecode(score_threshold=exact, post_center_range=(-8.0, -6.0, -10.0, 8.0, 8.0, 10.0),
                     nms_radius_sq=(1.0,), max_voxels=None)
    det = source_decode(h, preds, s)[0]
    # strict '>' drops the box at exactly the threshold; cell (15, 0) is at x = -7.5, y = 7.5: inside
    assert sorted(det["scores"].tolist()) == pytest.approx([0.7, 0.8, 0.9], abs=1e-6)
    s2 = SourceDecode(score_threshold=exact, post_center_range=(-8.0, -8.0, -10.0, 8.0, 7.0, 10.0),
                      nms_radius_sq=(1.0,), max_voxels=None)
    assert sorted(source_decode(h, preds, s2)[0]["scores"].tolist()) == pytest.approx([0.8, 0.9])  # y 7.5 > 7
    assert len(h.decode(preds)[0]["scores"]) == 4  # kd3d's own: score >= 0.1 keeps the 0.3 box, no range
    s3 = SourceDecode(score_threshold=0.1, top_k=2, post_center_range=None, nms_radius_sq=(1.0,), max_voxels=None)
    assert sorted(source_decode(h, preds, s3)[0]["scores"].tolist()) == pytest.approx([0.8, 0.9])
    boxes = det["boxes"].data
    i = int(np.argmax(det["scores"]))
    assert boxes[i, :3].tolist() == pytest.approx([2.5 - 8.0, 2.5 - 8.0, 1.0], abs=1e-5)  # gravity centre
    assert to_source_boxes(boxes, s)[i, 2] == pytest.approx(1.0 - 0.75, abs=1e-5)  # mmdet3d: bottom z
    assert to_source_boxes(boxes, SourceDecode(output_z="center"))[i, 2] == pytest.approx(1.0, abs=1e-5)


def test_source_decode_validates():
    with pytest.raises(ValueError, match="nms"):
        SourceDecode(nms="soft")
    with pytest.raises(ValueError, match="unknown fields"):
        SourceDecode.from_dict({"topk": 3})
    assert SourceDecode.from_dict(SourceDecode().to_dict()) == SourceDecode()


def test_load_foreign_reads_mmengine_files_without_their_classes(tmp_path):
    path = FIX / "teacher_voxel.pth"
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)  # mmengine's message hub holds HistoryBuffer objects
    ck = load_foreign(path)
    assert isinstance(ck["state_dict"]["pts_backbone.blocks.0.0.weight"], torch.Tensor)
    assert ck["state_dict"]._metadata["pts_middle_encoder.conv_input.0"]["version"] == 2
    hub = ck["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(hub, _Opaque)  # inert stand-in, no mmengine code ran
    with pytest.raises(FileNotFoundError):
        load_foreign(tmp_path / "missing.pth")


def test_convert_help_documents_every_source_and_flag(capsys):
    with pytest.raises(SystemExit):
        main(["convert", "import", "--help"])
    text = capsys.readouterr().out
    for word in ("mmdet3d", "openpcdet", "--from", "--out", "--mmdet3d-version", "--sparse-layout", "KRSC", "RSKC",
                 "RSCK", "--conv-for-no-stride", "--deconv-for-no-stride", "--width", "--model-kwargs", "0.x"):
        assert word in text, word
    with pytest.raises(SystemExit):
        main(["convert", "export", "--help"])
    text = capsys.readouterr().out
    for word in ("--model", "--model-kwargs", "--model-json", "--out", "--name", "strict=True"):
        assert word in text, word


def test_convert_import_then_export_round_trip(tmp_path, capsys):
    out = tmp_path / "teacher.pth"
    assert main(["convert", "import", str(FIX / "teacher_pillar.pth"), "--from", "mmdet3d", "--out", str(out),
                 "--model-kwargs", json.dumps({"point_range": [-12.8, -12.8, -5.0, 12.8, 12.8, 3.0]})]) == 0
    text = capsys.readouterr().out
    assert "teacher_model='kd3d.interop.decode:imported_centerpoint'" in text
    assert (tmp_path / "teacher.pth.sha256").is_file() and (tmp_path / "teacher.pth.model.json").is_file()
    assert main(["convert", "export", str(out), "--model-json", str(tmp_path / "teacher.pth.model.json"),
                 "--out", str(tmp_path / "exp"), "--name", "back"]) == 0
    back = torch.load(tmp_path / "exp" / "back_mmdet3d.pth", weights_only=True)["state_dict"]
    orig = load_foreign(FIX / "teacher_pillar.pth")["state_dict"]
    assert set(back) == set(orig) and all(torch.equal(back[k], orig[k]) for k in orig)
    assert main(["convert", "import", str(out), "--from", "mmdet3d", "--out", str(tmp_path / "x.pth"),
                 "--model-kwargs", "[1]"]) == 2
    assert "--model-kwargs: expected a JSON object" in capsys.readouterr().err


def test_checkpoint_config_is_read_as_data_never_run(tmp_path):
    from kd3d.interop.source_config import checkpoint_config, mmdet3d_import_settings, read_config_text

    marker = tmp_path / "ran"
    text = (f"import os\nvs = [0.1, 0.1, 0.2]\nx = os.system('touch {marker}')\n"
            "model = dict(type='CenterPoint', data_preprocessor=dict(voxel_layer=dict(voxel_size=vs, max_num_points=10, "
            "point_cloud_range=[-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], max_voxels=(90000, 120000))), "
            "pts_neck=dict(use_conv_for_no_stride=True), pts_bbox_head=dict(bbox_coder=dict(max_num=500, "
            "post_center_range=[-61.2, -61.2, -10.0, 61.2, 61.2, 10.0], score_threshold=0.1)), "
            "test_cfg=dict(pts=dict(nms_type='circle', min_radius=[4, 12, 10, 1, 0.85, 0.175], post_max_size=83)))\n")
    env, skipped = read_config_text(text)
    assert skipped == ["x"] and not marker.exists()
    cfg = checkpoint_config({"meta": {"cfg": text}})
    s = mmdet3d_import_settings(cfg)
    assert s["conv_for_no_stride"] is True
    assert s["model_kwargs"] == {"point_range": [-51.2, -51.2, -5.0, 51.2, 51.2, 3.0], "voxel_size": [0.1, 0.1, 0.2],
                                 "max_points_per_voxel": 10}
    assert s["decode"]["nms_radius_sq"] == (4, 12, 10, 1, 0.85, 0.175) and s["decode"]["max_voxels"] == 120000
    assert SourceDecode.from_dict({**SourceDecode().to_dict(), **s["decode"]}).top_k == 500
    assert checkpoint_config({"meta": {"cfg": "model = foo()"}}) is None
