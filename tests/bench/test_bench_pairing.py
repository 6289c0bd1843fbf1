"""Paired seeds hold in kd3d's trainer: with the same seed a baseline run and a distillation run
start from the same student weights and train on the same batches in the same order with the
same augmentation (what makes bench/report.py's arm - baseline a paired difference)."""
import dataclasses

import pytest
import torch

from kd3d.engine.trainer import Trainer
from kd3d.testing import toy_config_path
from kd3d.engine.config import load_config


def _record(cfg, work, steps):
    """(initial student state, [(tokens, first point of each sample)] of the first ``steps`` batches
    the training loop consumed)."""
    trainer = Trainer(cfg, work, overwrite=True)
    init = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    seen = []
    step = trainer._train_step

    def spy(batch):
        seen.append(([s.token for s in batch.samples], [p[0].clone() for p in batch.points]))
        return step(batch)

    trainer._train_step = spy
    trainer.fit()
    assert len(seen) == steps
    return init, seen


def _cfg(name, seed, steps, distill):
    cfg = load_config(toy_config_path(name))
    rt = dataclasses.replace(cfg.runtime, seed=seed, progress=False, tensorboard=False, eval_interval=0)
    cfg = dataclasses.replace(cfg, runtime=rt, optim=dataclasses.replace(cfg.optim, max_steps=steps))
    if not distill:
        return dataclasses.replace(cfg, distill=None)
    return dataclasses.replace(cfg, distill=dataclasses.replace(cfg.distill, teacher_checkpoint="",
                                                                allow_untrained_teacher=True))


@pytest.mark.parametrize("method", ["distill_fitnet", "distill_distillbev"])
def test_same_seed_same_init_and_batches_across_arms(tmp_path, method):
    torch.set_num_threads(1)
    steps = 10  # 8 steps per epoch (16 samples, batch 2): the second epoch's order is checked too
    base_init, base_batches = _record(_cfg(method, 3, steps, False), tmp_path / "base", steps)
    kd_init, kd_batches = _record(_cfg(method, 3, steps, True), tmp_path / "kd", steps)
    assert base_init.keys() == kd_init.keys()
    for k in base_init:
        assert torch.equal(base_init[k], kd_init[k]), k
    assert [t for t, _ in base_batches] == [t for t, _ in kd_batches]
    for (_, a), (_, b) in zip(base_batches, kd_batches):  # same augmentation, not only the same samples
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    # and the seed matters: another seed changes the init and the order
    other_init, other_batches = _record(_cfg(method, 4, steps, False), tmp_path / "other", steps)
    assert any(not torch.equal(base_init[k], other_init[k]) for k in base_init if base_init[k].is_floating_point())
    assert [t for t, _ in base_batches] != [t for t, _ in other_batches]


def test_v2_arms_differ_from_their_baseline_only_in_distill():
    """Config-level pairing of every benchmark-v2 suite: data, transforms, targets, model,
    schedule, budget and runtime of each arm equal the baseline's; only ``distill`` (and the
    name) differ, so a seed gives every arm the same init and batches (test above)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
    import distill  # bench/distill.py

    for name, suite in distill.SUITES.items():
        if not suite.get("v2"):
            continue
        base = dataclasses.asdict(load_config(suite["baseline"]))
        for label, config in suite["methods"].items():
            arm = dataclasses.asdict(load_config(config))
            assert arm["distill"] is not None, (name, label)
            diff = sorted(k for k in base if k not in ("name", "distill") and base[k] != arm[k])
            if diff == ["data"]:  # allowed: the arm loads the multi-sweep teacher's sweeps (the student's
                # inputs stay the same: test_camera_arm_sweeps_leave_the_student_inputs_unchanged)
                b, a = dict(base["data"]), dict(arm["data"])
                b["kwargs"], a["kwargs"] = ({k: v for k, v in d["kwargs"].items() if k != "sweeps"} for d in (b, a))
                diff = ["data"] if a != b else []
            assert not diff, f"suite {name}: {label} ({config}) differs from {suite['baseline']} in {diff}"
            assert arm["distill"]["teacher_model"] == load_config(suite["teacher"]).model.name, (name, label)


def test_camera_arm_sweeps_leave_the_student_inputs_unchanged(tmp_path):
    """The camera arms load 3 LiDAR sweeps for their teacher, the baseline 1. With the same seed
    the student's inputs are identical: images, image augmentation, boxes and the key-frame
    points (its depth targets use dt == 0 points only); only sweep points (dt > 0) are added."""
    import numpy as np

    from kd3d.data.synth import generate_nuscenes
    from kd3d.engine.builders import build_dataset
    from kd3d.engine.config import override
    from kd3d.engine.data import SeededDataset

    generate_nuscenes(tmp_path, scenes=1, samples_per_scene=1, seed=3, image_size=(176, 64), sweeps=3,
                      progress=False, version="v1.0-mini")
    sets = {"data.root": str(tmp_path), "data.version": "v1.0-mini", "data.train_split": "mini_train"}
    data = []
    for name in ("bench/camera_student", "bench/camera_bevdistill"):
        cfg = override(load_config(name), sets)
        ds = SeededDataset(build_dataset(cfg.data, "mini_train", train=True), seed=5)
        data.append([ds[i] for i in range(len(ds))])
    assert load_config("bench/camera_bevdistill").data.kwargs["sweeps"] == 3
    for a, b in zip(*data):
        assert a.token == b.token
        assert np.array_equal(a.images, b.images) and np.array_equal(a.img_aug, b.img_aug)
        assert np.array_equal(a.gt_boxes.data, b.gt_boxes.data, equal_nan=True) and np.array_equal(a.gt_labels, b.gt_labels)
        assert np.array_equal(a.points[:a.num_key_points], b.points[:b.num_key_points])
        assert (a.points[:, 4] == 0).all() and len(b.points) > len(a.points)
        assert (b.points[b.num_key_points:, 4] > 0).all()
