"""The engine on the real components: every config builds; a real LiDAR detector trains on
generated nuScenes data, writes a submission and is evaluated; the distillation hook runs."""
import glob
import json
from pathlib import Path

import pytest
import torch

from kd3d.engine.builders import TrainStep, build_dataset, build_train_module
from kd3d.engine.config import configs_dir, load_config, override
from kd3d.models.build import build_model
from kd3d.engine.data import SeededDataset, make_loader
from kd3d.engine.trainer import evaluate, run_experiment
from kd3d.structures.classes import NUSC_DET_CLASSES

CONFIGS = sorted(p for p in glob.glob(str(configs_dir() / "*" / "*.py")) if not p.endswith("__init__.py"))


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from kd3d.data.synth import generate_nuscenes

    root = tmp_path_factory.mktemp("synth_nusc")
    generate_nuscenes(root, scenes=2, samples_per_scene=2, seed=3, image_size=(176, 64), sweeps=1, progress=False)
    return root


def _small(cfg, root, **extra):
    values = {"data.root": str(root), "runtime.progress": False, "runtime.tensorboard": False,
              "data.kwargs": {**cfg.data.kwargs, "sweeps": 1}, "data.batch_size": 1, "data.eval_batch_size": 2}
    values.update(extra)
    return override(cfg, values)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(Path(p).relative_to(configs_dir())))
def test_every_config_builds_its_model(path):
    cfg = load_config(path)
    model = build_model(cfg.model)
    assert sum(p.numel() for p in model.parameters()) > 0
    if cfg.data.dataset == "nuscenes" and cfg.eval.evaluator == "nuscenes_det":
        assert tuple(model.class_names) == NUSC_DET_CLASSES, f"{path}: label order must be the dataset's"


def test_lidar_teacher_trains_and_evaluates(synth_root, tmp_path):
    cfg = _small(load_config("synth/lidar_teacher_pillar"), synth_root,
                 **{"optim.max_steps": 2, "model.kwargs.width": 0.25, "runtime.ckpt_interval": 1,
                    "model.kwargs.point_range": [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]})
    metrics = run_experiment(cfg, tmp_path / "run")
    assert {"mAP", "NDS", "mATE", "AP/car"} <= metrics.keys()
    assert 0.0 <= metrics["mAP"] <= 1.0 and 0.0 <= metrics["NDS"] <= 1.0
    sub = json.loads((tmp_path / "run/eval/step00000002/results_nusc.json").read_text())
    val = build_dataset(cfg.data, cfg.data.val_split, train=False)
    assert set(sub["results"]) == set(val.tokens)
    assert (tmp_path / "run/eval/step00000002/metrics_summary.json").is_file()
    # evaluate() on the saved checkpoint reproduces the end-of-training metrics exactly
    ckpt = tmp_path / "run/checkpoints/ckpt_step00000002.pth"
    again = evaluate(cfg, ckpt, tmp_path / "test_out")
    assert again == metrics
    assert (tmp_path / "test_out/results_nusc.json").is_file()
    # --format-only (e.g. the test split): submission written, no metrics computed
    from kd3d.cli.main import main

    assert main(["test", str(configs_dir() / "synth/lidar_teacher_pillar.py"), "--checkpoint", str(ckpt),
                 "--out", str(tmp_path / "fmt"), "--format-only", "--set", f"data.root={synth_root}",
                 "--set", "model.kwargs.width=0.25", "--set", "runtime.progress=false",
                 "--set", "model.kwargs.point_range=[-25.6, -25.6, -5.0, 25.6, 25.6, 3.0]"]) == 0
    sub2 = json.loads((tmp_path / "fmt/results_nusc.json").read_text())
    assert sub2["results"].keys() == sub["results"].keys()
    assert json.loads((tmp_path / "fmt/metrics.json").read_text())["num_samples"] == len(val)


def test_real_detector_resumes_exactly(synth_root, tmp_path):
    """Exact resume with the real loader and its random transforms (rotation, scale, flips,
    point shuffle are reseeded per sample) and a real detector, across an epoch boundary."""
    from kd3d.engine.checkpoint import latest_checkpoint, load_checkpoint
    from kd3d.engine.config import load_base_module
    from kd3d.engine.trainer import Trainer

    BEV_AUGMENTATION = load_base_module("synth/lidar_teacher").BEV_AUGMENTATION

    base = load_config("synth/lidar_teacher_pillar")
    transforms = BEV_AUGMENTATION + base.data.train_kwargs["transforms"] + [["PointShuffle", {}]]
    cfg = _small(base, synth_root,
                 **{"optim.max_steps": 3, "model.kwargs.width": 0.25, "eval.evaluator": "none",
                    "model.kwargs.point_range": [-25.6, -25.6, -5.0, 25.6, 25.6, 3.0],
                    "data.train_kwargs": {"transforms": transforms}})
    assert [t[0] for t in cfg.data.train_kwargs["transforms"]][:2] == ["GlobalRotScaleTrans", "RandomFlip3D"]
    run_experiment(cfg, tmp_path / "full")
    Trainer(cfg, tmp_path / "part", stop_after=1).fit()
    run_experiment(cfg, tmp_path / "part", resume=True)
    a = load_checkpoint(latest_checkpoint(tmp_path / "full"))["model"]
    b = load_checkpoint(latest_checkpoint(tmp_path / "part"))["model"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_camera_student_step_and_distill_hook(synth_root):
    from kd3d.distill import DistillConfig

    cfg = _small(load_config("synth/distill_unidistill"), synth_root)
    cfg = override(cfg, {"distill": DistillConfig(**{**cfg.distill.__dict__, "teacher_checkpoint": "",
                                                     "allow_untrained_teacher": True,
                                                     "teacher_kwargs": {"scale": "synthetic", "width": 0.25},
                                                     "method_kwargs": {**cfg.distill.method_kwargs,
                                                                       "teacher_channels": 32}})})
    torch.manual_seed(0)
    model = build_model(cfg.model)
    module = build_train_module(cfg, model)
    assert module is not model and module.student is model
    ds = SeededDataset(build_dataset(cfg.data, cfg.data.train_split, train=True), seed=0)
    loader, _ = make_loader(ds, batch_size=1, shuffle=True, seed=0, rank=0, world_size=1, num_workers=0,
                            drop_last=True)
    batch = next(iter(loader))
    assert batch.images.shape[-2:] == (128, 352)
    losses = TrainStep(module)(batch)
    assert any(k.startswith("distill/") for k in losses) and any(k.startswith("student/") for k in losses)
    total = sum(losses.values())
    total.backward()
    assert all(p.grad is None for p in module.teacher.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_segmenter_trains_and_writes_lidarseg_bins(synth_root, tmp_path):
    cfg = _small(load_config("synth/seg_student_050"), synth_root,
                 **{"optim.max_steps": 1, "model.kwargs.width": 0.25})
    metrics = run_experiment(cfg, tmp_path / "seg")
    assert "mIoU" in metrics and 0.0 <= metrics["mIoU"] <= 1.0
    val = build_dataset(cfg.data, cfg.data.val_split, train=False)
    bins = sorted((tmp_path / "seg/eval/step00000001").rglob("*_lidarseg.bin"))
    assert len(bins) == len(val)
    import numpy as np

    for path, entry in zip(bins, sorted(val.entries, key=lambda e: e["lidar"]["sd_token"])):
        assert path.name.startswith(entry["lidar"]["sd_token"])
        labels = np.fromfile(path, dtype=np.uint8)
        assert labels.min() >= 1 and labels.max() <= 16


def test_kitti_pillar_writes_result_files_and_scores(tmp_path):
    from kd3d.data.synth import generate_kitti

    root = tmp_path / "kitti"
    generate_kitti(root, frames=4, seed=1, image_size=(621, 188), progress=False)
    cfg = override(load_config("synth/kitti_pillar"), {
        "data.root": str(root), "optim.max_steps": 1, "model.kwargs.width": 0.25, "runtime.progress": False,
        "runtime.tensorboard": False})
    ckpt_metrics = run_experiment(cfg, tmp_path / "run")
    assert "mAP/3d_R40_moderate" in ckpt_metrics and "Car/3d_R40_moderate" in ckpt_metrics
    val = build_dataset(cfg.data, cfg.data.val_split, train=False)
    files = sorted(p.stem for p in (tmp_path / "run/eval/step00000001/kitti_results").glob("*.txt"))
    assert files == sorted(val.tokens)
