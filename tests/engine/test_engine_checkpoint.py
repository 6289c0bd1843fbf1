"""Checkpoint files, RNG capture, strict loading and the deterministic data pipeline."""
import random

import numpy as np
import pytest
import torch
from torch import nn

from kd3d.engine.checkpoint import (CheckpointError, atomic_save, capture_rng, checkpoint_path, latest_checkpoint,
                                    load_checkpoint, load_model_weights, load_state_dict_checked, prune_checkpoints,
                                    restore_rng)
from kd3d.engine.data import ResumableSampler, SeededDataset
from kd3d.testing.toy import ToyDataset


def test_atomic_save_and_weights_only(tmp_path):
    p = tmp_path / "sub" / "a.pth"
    atomic_save({"x": torch.arange(3), "rng": capture_rng(), "cfg": "{}"}, p)
    assert sorted(f.name for f in p.parent.iterdir()) == ["a.pth", "a.pth.sha256"], "temp file must be gone"
    state = load_checkpoint(p)
    assert torch.equal(state["x"], torch.arange(3))
    # an object that needs unpickling arbitrary classes is refused
    torch.save({"obj": nn.Linear(1, 1)}, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "missing.pth")


def test_mismatch_lists_keys(tmp_path):
    a = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    b = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 2), nn.Linear(2, 1))
    with pytest.raises(CheckpointError) as err:
        load_state_dict_checked(b, a.state_dict(), "a.pth")
    msg = str(err.value)
    assert "missing keys: 2.bias, 2.weight" in msg
    assert "shape mismatches: 1.bias" in msg and "a.pth" in msg
    atomic_save({"format": "kd3d-ckpt-1", "model": a.state_dict()}, tmp_path / "c.pth")
    c = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    load_model_weights(c, tmp_path / "c.pth")
    assert torch.equal(c[1].weight, a[1].weight)
    with pytest.raises(CheckpointError, match="unexpected keys: 1.bias, 1.weight"):
        load_model_weights(nn.Sequential(nn.Linear(2, 3)), tmp_path / "c.pth")


def test_rng_roundtrip(tmp_path):
    state = capture_rng()
    atomic_save(state, tmp_path / "r.pth")
    first = (random.random(), np.random.rand(), torch.rand(2))
    restore_rng(load_checkpoint(tmp_path / "r.pth"))
    second = (random.random(), np.random.rand(), torch.rand(2))
    assert first[0] == second[0] and first[1] == second[1] and torch.equal(first[2], second[2])


def test_checkpoint_listing(tmp_path):
    for s in (3, 12, 7):
        atomic_save({"step": s}, checkpoint_path(tmp_path, s))
    assert latest_checkpoint(tmp_path).name == "ckpt_step00000012.pth"
    prune_checkpoints(tmp_path, 2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "ckpt_step00000007.pth", "ckpt_step00000007.pth.sha256", "ckpt_step00000012.pth",
        "ckpt_step00000012.pth.sha256"]


def test_sampler_shards_and_resumes():
    full = ResumableSampler(10, shuffle=True, seed=3)
    full.set_epoch(2)
    order = list(full)
    assert sorted(order) == list(range(10))
    full.set_epoch(3)
    assert list(full) != order
    full.set_epoch(2)
    full.set_start(4)
    assert list(full) == order[4:]
    ranks = [ResumableSampler(10, shuffle=True, seed=3, rank=r, world_size=3) for r in range(3)]
    for r in ranks:
        r.set_epoch(2)
    parts = [list(r) for r in ranks]
    assert all(len(p) == 4 for p in parts)  # 10 padded to 12
    assert set(sum(parts, [])) == set(range(10))
    assert [parts[i % 3][i // 3] for i in range(10)] == order


def test_seeded_dataset_is_deterministic_and_restores_rng():
    ds = SeededDataset(ToyDataset(8, split="train"), seed=1)
    torch.manual_seed(0)
    np.random.seed(5)
    a = [ds[i].gt_boxes.data[:, 1].copy() for i in range(8)]
    probe = np.random.rand()
    np.random.seed(99)  # a different global state must not change the samples
    b = [ds[i].gt_boxes.data[:, 1].copy() for i in reversed(range(8))][::-1]
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    np.random.seed(5)
    assert np.random.rand() == probe, "global numpy RNG must be restored"
    flips = [not np.array_equal(x, s.gt_boxes.data[:, 1]) for x, s in zip(a, ds.samples)]
    assert any(flips) and not all(flips)
    ds.set_epoch(1)
    c = [ds[i].gt_boxes.data[:, 1].copy() for i in range(8)]
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))


def test_loader_workers_do_not_change_the_data():
    from kd3d.engine.data import make_loader

    def flips(workers):
        ds = SeededDataset(ToyDataset(8, split="train"), seed=4)
        loader, sampler = make_loader(ds, batch_size=2, shuffle=True, seed=4, rank=0, world_size=1,
                                      num_workers=workers, drop_last=True)
        ds.set_epoch(1)
        sampler.set_epoch(1)
        return [(s.token, s.gt_boxes.data[:, 1].tolist()) for b in loader for s in b.samples]

    assert flips(0) == flips(2)
