"""Bring your own teacher end to end: an mmdet3d 1.x CenterPoint checkpoint -> `kd3d convert import` ->
a shipped distillation config with that teacher trains on generated nuScenes data, evaluates, and the
student comes back out with `kd3d convert export`."""
from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from kd3d.cli.main import main
from kd3d.engine.config import load_config, override
from kd3d.engine.trainer import run_experiment
from kd3d.interop import mmdet3d as mm
from kd3d.models.lidar.presets import MMDET3D_VOXEL, centerpoint_voxel

PR = [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from kd3d.data.synth import generate_nuscenes

    root = tmp_path_factory.mktemp("synth_nusc_interop")
    generate_nuscenes(root, scenes=2, samples_per_scene=2, seed=3, image_size=(176, 64), sweeps=1, progress=False)
    return root


def test_distillation_runs_with_an_imported_mmdet3d_teacher(synth_root, tmp_path, capsys):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    # the user's teacher: mmdet3d's residual CenterPoint at the synthetic voxel size, as an mmdet3d 1.x file
    teacher = centerpoint_voxel(**{**MMDET3D_VOXEL, "scale": "synthetic", "width": 0.25, "point_range": PR})
    sd, _ = mm.export_state(teacher)
    torch.save({"state_dict": sd, "meta": {"mmengine_version": "0.10.7"}}, tmp_path / "mmdet3d_teacher.pth")
    out = tmp_path / "teacher.pth"
    assert main(["convert", "import", str(tmp_path / "mmdet3d_teacher.pth"), "--from", "mmdet3d", "--out", str(out),
                 "--model-kwargs", json.dumps({"scale": "synthetic", "point_range": PR})]) == 0
    tcfg = json.loads((tmp_path / "teacher.pth.model.json").read_text())

    cfg = load_config("synth/distill_pointdistiller")
    kw = {**cfg.distill.method_kwargs, "num_items": 16, "k": 4}
    cfg = dataclasses.replace(cfg, distill=dataclasses.replace(
        cfg.distill, teacher_model=tcfg["name"], teacher_kwargs=tcfg["kwargs"], teacher_checkpoint=str(out),
        method_kwargs=kw))
    cfg = override(cfg, {"data.root": str(synth_root), "runtime.progress": False, "runtime.tensorboard": False,
                         "data.kwargs": {**cfg.data.kwargs, "sweeps": 1}, "data.batch_size": 1,
                         "data.eval_batch_size": 2, "optim.max_steps": 2, "runtime.ckpt_interval": 2,
                         "model.kwargs.point_range": PR, "model.kwargs.with_attrs": False})
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"mAP", "NDS"} <= metrics.keys()
    ckpt = tmp_path / "run" / "checkpoints" / "ckpt_step00000002.pth"
    assert ckpt.is_file()
    model_json = {"name": cfg.model.name, "kwargs": dict(cfg.model.kwargs)}
    (tmp_path / "student.json").write_text(json.dumps(model_json))
    capsys.readouterr()
    assert main(["convert", "export", str(ckpt), "--model-json", str(tmp_path / "student.json"),
                 "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "student_mmdet3d.pth").is_file()
    assert "model = {'type': 'CenterPoint'" in (tmp_path / "exported" / "student_mmdet3d_config.py").read_text()
