"""Checkpoints: atomic writes, ``weights_only`` loading, RNG states, strict key checks.

A training checkpoint is a dict of plain tensors/containers (loadable with
``torch.load(..., weights_only=True)``)::

    {"format": "kd3d-ckpt-1", "step": int, "epoch": int,
     "model": state_dict of the trained module (model or distiller),
     "student": state_dict of the deployable student (distillation only),
     "optimizer": ..., "scheduler": ..., "scaler": ... or None,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": tuple},
     "config": JSON text of the ExperimentConfig, "metrics": {...}}
"""
from __future__ import annotations

import os
import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

FORMAT = "kd3d-ckpt-1"
_CKPT_RE = re.compile(r"ckpt_step(\d+)\.pth$")


class CheckpointError(RuntimeError):
    """A checkpoint cannot be read or does not match the model."""


def atomic_save(obj, path: str | Path) -> Path:
    """``torch.save`` to a temp file in the same folder, fsync, then ``os.replace``: a crash
    never leaves a truncated checkpoint under ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load with ``weights_only=True``; raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot be loaded with weights_only=True ({exc})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    return state


def model_state_from(state: dict, path: str | Path = "<checkpoint>", prefer_student: bool = True) -> dict:
    """The model weights inside a checkpoint dict: ``student`` (distillation) when present and
    ``prefer_student``, else ``model``; a bare state_dict is returned as is."""
    if prefer_student and isinstance(state.get("student"), dict):
        return state["student"]
    if isinstance(state.get("model"), dict):
        return state["model"]
    if state.get("format") == FORMAT:
        raise CheckpointError(f"checkpoint {path}: has no 'model' entry")
    return state


def load_state_dict_checked(module: nn.Module, state_dict: dict, source: str = "<checkpoint>") -> None:
    """``module.load_state_dict`` that fails with a readable list of missing / unexpected keys
    and shape mismatches (a mismatched checkpoint is an error, never a silent partial load)."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state_dict)
        if hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape)
    )
    if missing or unexpected or shapes:

        def fmt(items):
            head = ", ".join(items[:20])
            return head + (f", ... ({len(items)} in all)" if len(items) > 20 else "")

        parts = [f"checkpoint {source} does not match {type(module).__name__}:"]
        if missing:
            parts.append(f"missing keys: {fmt(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {fmt(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {fmt(shapes)}")
        raise CheckpointError("\n  ".join(parts))
    module.load_state_dict(state_dict, strict=True)


def load_model_weights(model: nn.Module, path: str | Path, prefer_student: bool = True) -> dict:
    """Load a kd3d checkpoint (or a bare state_dict file) into ``model``; returns the dict."""
    state = load_checkpoint(path)
    load_state_dict_checked(model, model_state_from(state, path, prefer_student), str(path))
    return state


# --------------------------------------------------------------------------- RNG
def capture_rng() -> dict:
    """Python, numpy, torch (and CUDA) global RNG states as weights_only-safe objects."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(state: dict) -> None:
    """Inverse of :func:`capture_rng`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- files
def checkpoint_path(work_dir: str | Path, step: int) -> Path:
    return Path(work_dir) / "checkpoints" / f"ckpt_step{step:08d}.pth"


def list_checkpoints(work_dir: str | Path) -> list[Path]:
    """Checkpoints under ``work_dir/checkpoints`` sorted by step."""
    folder = Path(work_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CKPT_RE.search(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(work_dir: str | Path) -> Path | None:
    ckpts = list_checkpoints(work_dir)
    return ckpts[-1] if ckpts else None


def prune_checkpoints(work_dir: str | Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (``keep <= 0`` keeps everything)."""
    if keep <= 0:
        return
    for p in list_checkpoints(work_dir)[:-keep]:
        p.unlink(missing_ok=True)
