"""Checkpoint integrity, file naming and error style (kd3d.models.checkpoint, shared by engine and distiller)."""
import logging
import os

import pytest
import torch
from torch import nn

from kd3d.distill import load_checkpoint_into
from kd3d.engine.checkpoint import CheckpointError, atomic_save, checkpoint_path, load_checkpoint
from kd3d.models.checkpoint import (clean_temp_files, latest_checkpoint, list_checkpoints, load_state_dict_checked,
                                    prune_checkpoints, resolve_checkpoint, state_dict_from)


def _net(width=8):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, width), nn.Linear(width, 4))


def test_overwritten_bytes_fail_naming_the_file(tmp_path):
    path = atomic_save({"model": _net().state_dict(), "step": 3}, tmp_path / "ckpt_step00000003.pth")
    data = bytearray(path.read_bytes())
    # overwrite 64 bytes in the middle of the first weight tensor's storage (a valid zip still)
    name = b"data/0"
    start = data.index(name) + 200 if name in data else len(data) // 2
    data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt_step00000003\.pth: sha256 .* differs"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=r"ckpt_step00000003\.pth"):
        load_checkpoint_into(_net(), path)


def test_file_without_checksum_loads_with_a_warning(tmp_path, caplog):
    torch.save({"model": _net().state_dict()}, tmp_path / "external.pth")
    logger = logging.getLogger("kd3d.models.checkpoint")
    logger.addHandler(caplog.handler)  # the engine's "kd3d" logger may not propagate to the root
    try:
        with caplog.at_level(logging.WARNING, logger="kd3d.models.checkpoint"):
            state = load_checkpoint(tmp_path / "external.pth")
    finally:
        logger.removeHandler(caplog.handler)
    assert "external.pth has no checksum file" in caplog.text
    assert set(state["model"]) == set(_net().state_dict())


def test_latest_is_by_parsed_step_and_pattern_is_anchored(tmp_path):
    folder = tmp_path / "checkpoints"
    for name, step in (("ckpt_step9.pth", 9), ("ckpt_step10.pth", 10), ("backup_ckpt_step99.pth", 99),
                       ("ckpt_step11.pth.bak", 11), (".ckpt_step12.pth.tmp1", 12)):
        folder.mkdir(exist_ok=True)
        torch.save({"model": {"w": torch.full((1,), float(step))}}, folder / name)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["ckpt_step9.pth", "ckpt_step10.pth"]
    assert latest_checkpoint(tmp_path).name == "ckpt_step10.pth"
    assert resolve_checkpoint(tmp_path) == folder / "ckpt_step10.pth"
    # the distiller's loader follows the same rule (it used to take the lexicographically last: step 9)
    m = nn.Module()
    m.register_buffer("w", torch.zeros(1))
    load_checkpoint_into(m, tmp_path)
    assert float(m.w) == 10.0


def test_one_key_precedence():
    a, b, c = {"a": 1}, {"b": 1}, {"c": 1}
    assert state_dict_from({"student": a, "model": b, "state_dict": c}) is a
    assert state_dict_from({"student": a, "model": b}, prefer_student=False) is b
    assert state_dict_from({"state_dict": c, "epoch": 3}) is c
    assert state_dict_from(a) is a
    with pytest.raises(CheckpointError, match="x.pth: has no 'model' entry"):
        state_dict_from({"format": "kd3d-ckpt-1", "step": 1}, "x.pth")


def test_mismatch_error_is_short_and_counts(tmp_path):
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(40)])
    other = nn.Sequential(*[nn.Linear(2, 3) for _ in range(3)])
    torch.save(other.state_dict(), tmp_path / "teacher.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_into(big, tmp_path / "teacher.pth")
    msg = str(err.value)
    assert "\n" not in msg and len(msg) < 600, msg
    assert "teacher.pth does not match Sequential" in msg
    assert "missing keys: 10.bias, 10.weight, 11.bias, 11.weight, 12.bias, ... (74 in all)" in msg
    assert "shape mismatches: 0.bias: checkpoint (3,) vs model (2,)" in msg and "(6 in all)" in msg
    with pytest.raises(ValueError):  # the distiller's callers caught ValueError before
        load_state_dict_checked(big, other.state_dict(), "x")


def test_temp_files_of_interrupted_saves_are_removed(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = folder / f".ckpt_step00000004.pth.tmp{dead}"
    stale.write_bytes(b"half a checkpoint")
    alive = folder / f".ckpt_step00000004.pth.tmp{os.getppid()}"  # a live process may still be writing
    alive.write_bytes(b"in progress")
    atomic_save({"step": 8}, checkpoint_path(tmp_path, 8))
    assert not stale.exists() and alive.exists()
    alive.unlink()
    stale.write_bytes(b"again")
    assert clean_temp_files(folder) == [stale] and not stale.exists()


def test_prune_only_touches_owned_files(tmp_path):
    for s in (100, 200, 300):
        atomic_save({"step": s}, checkpoint_path(tmp_path, s))
    mine = [atomic_save({"step": s}, checkpoint_path(tmp_path, s)) for s in (10, 20, 30)]
    removed = prune_checkpoints(tmp_path, 2, owned=mine)
    assert removed == [mine[0]]
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "ckpt_step00000020.pth", "ckpt_step00000030.pth", "ckpt_step00000100.pth", "ckpt_step00000200.pth",
        "ckpt_step00000300.pth"]
    assert not (tmp_path / "checkpoints" / "ckpt_step00000010.pth.sha256").exists()
