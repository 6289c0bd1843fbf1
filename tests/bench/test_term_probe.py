"""bench/term_probe.py: the per-cell focal loss and the mask comparison on hand-derived values,
and the probe end to end on the tiny real models (camera student + LiDAR teacher, BEVDistill)."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
LN2 = math.log(2.0)


def _probe():
    sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location("bench_term_probe", ROOT / "bench" / "term_probe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cell_focal_loss_by_hand():
    tp = _probe()
    # p = sigmoid(0) = 0.5: at a centre (t = 1) -(1-p)^2 log p = 0.25 ln 2; at t = 0.5
    # -(1-t)^4 p^2 log(1-p) = 0.0625 * 0.25 ln 2; at t = 0 -p^2 log(1-p) = 0.25 ln 2
    logits = torch.zeros(1, 2, 1, 3)
    target = torch.tensor([[[[1.0, 0.5, 0.0]], [[0.0, 0.0, 0.5]]]])
    got = tp.cell_focal_loss(logits, target)
    want = torch.tensor([[[0.25 * LN2 + 0.25 * LN2, 0.0625 * 0.25 * LN2 + 0.25 * LN2,
                           0.25 * LN2 + 0.0625 * 0.25 * LN2]]])
    torch.testing.assert_close(got, want)
    # the summed cells over the positive count are the head's loss
    from kd3d.models.heads.losses import gaussian_focal_loss

    torch.testing.assert_close(got.sum(), gaussian_focal_loss(logits, target) * 1.0)


def test_where_teacher_beats_by_hand():
    tp = _probe()
    t = np.array([[1.0, 2.0], [3.0, 0.0]])
    s = np.array([[2.0, 1.0], [4.0, 1.0]])
    out = tp.where_teacher_beats(t, s, {"fg": np.array([[1.0, 0.0], [0.5, 0.0]]), "odd": np.ones((3, 3))})
    assert out["all"] == {"cells": 4.0, "teacher": 1.5, "student": 2.0, "teacher_better": 0.75}
    # weights 1 and 0.5: teacher (1 + 1.5) / 1.5, student (2 + 2) / 1.5, teacher better on both
    assert out["fg"] == pytest.approx({"cells": 1.5, "teacher": 2.5 / 1.5, "student": 4 / 1.5, "teacher_better": 1.0})
    assert "skipped" in out["odd"]


def test_probe_on_tiny_camera_bevdistill(tmp_path):
    from kd3d.data.synth import generate_nuscenes
    from kd3d.engine.config import load_config
    from kd3d.models.build import build_model
    from kd3d.models.checkpoint import atomic_save

    tp = _probe()
    root = generate_nuscenes(tmp_path / "d", scenes=1, samples_per_scene=2, seed=0, image_size=(352, 198),
                             sweeps=1, progress=False)["dataroot"]
    torch.manual_seed(0)
    atomic_save({"model": build_model(load_config("bench/lidar_teacher").model).state_dict()}, tmp_path / "t.pth")
    out = tmp_path / "probe.json"
    assert tp.main(["bench/camera_bevdistill", "--teacher", str(tmp_path / "t.pth"), "--batches", "1",
                    "--set", f"data.root={root}", "--set", "data.version=v1.0-mini",
                    "--set", "data.train_split=mini_train", "--json", str(out)]) == 0
    s = json.loads(out.read_text())["summary"]
    assert set(s["terms"]) == {"distill/bevdistill/dense", "distill/bevdistill/instance",
                               "distill/bevdistill/prediction"}
    for t in s["terms"].values():
        assert t["grad_norm"] > 0 and -1 <= t["cos_student"] <= 1
        assert t["grad_ratio"] == pytest.approx(t["grad_norm"] / s["student_grad_norm"], rel=1e-9)
    assert s["bev"]["all"]["cells"] == 64 * 64 and 0 <= s["bev"]["all"]["teacher_better"] <= 1
    assert any(k.startswith("bevdistill/") for k in s["bev"])  # the method's own map was compared
