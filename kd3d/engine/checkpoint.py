"""Training checkpoints: the file layout and RNG states. File handling (atomic writes, checksums,
``weights_only`` loading, key precedence, the latest-file rule, pruning) is
:mod:`kd3d.models.checkpoint`, shared with the distiller and re-exported here.

A training checkpoint is a dict of plain tensors/containers (loadable with
``torch.load(..., weights_only=True)``), stored with a ``.sha256`` sidecar::

    {"format": "kd3d-ckpt-1", "step": int, "epoch": int,
     "model": state_dict of the trained module (model, or distiller without its teacher),
     "teacher": {"path": str | None, "sha256": str} (distillation only: the frozen teacher's
                checkpoint and the fingerprint of its weights, instead of the weights),
     "student": state_dict of the deployable student (distillation only),
     "optimizer": ..., "scheduler": ..., "scaler": ... or None,
     "rng": {"torch": ByteTensor, "cuda": [ByteTensor], "numpy": {...}, "python": tuple},
     "config": JSON text of the ExperimentConfig, "metrics": {...}}
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from kd3d.models.checkpoint import (FORMAT, CheckpointError, CheckpointNotFoundError, atomic_save, checkpoint_path,
                                    checkpoint_step, clean_temp_files, latest_checkpoint, list_checkpoints,
                                    load_checkpoint, load_module_state, load_state_dict_checked, module_checkpoint_state,
                                    prune_checkpoints, remove_checkpoint, resolve_checkpoint, state_fingerprint)
from kd3d.models.checkpoint import state_dict_from as model_state_from

__all__ = ["FORMAT", "CheckpointError", "CheckpointNotFoundError", "atomic_save", "load_checkpoint", "model_state_from",
           "load_state_dict_checked", "load_model_weights", "capture_rng", "restore_rng", "checkpoint_path",
           "checkpoint_step", "list_checkpoints", "latest_checkpoint", "resolve_checkpoint", "prune_checkpoints",
           "remove_checkpoint", "clean_temp_files", "module_checkpoint_state", "load_module_state", "state_fingerprint",
           "RunCheckpoints", "WorkDirInUseError"]


def load_model_weights(model: nn.Module, path: str | Path, prefer_student: bool = True) -> dict:
    """Load a kd3d checkpoint (or a bare state_dict file) into ``model``; returns the dict."""
    state = load_checkpoint(path)
    load_state_dict_checked(model, model_state_from(state, path, prefer_student=prefer_student), str(path))
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


# --------------------------------------------------------------------------- one run's files
class WorkDirInUseError(CheckpointError):
    """A fresh run was pointed at a work dir that holds another run's checkpoints."""


class RunCheckpoints:
    """The checkpoint files of one training run in ``work_dir/checkpoints``.

    A fresh run refuses a work dir holding checkpoints (:class:`WorkDirInUseError`) unless
    ``overwrite``, which deletes them first; a resumed run owns the files up to the step it
    resumed from. Pruning (``keep``) only ever removes files this run owns, so a longer earlier
    run can never make a new run delete its own checkpoints. Temp files of interrupted saves are
    removed at start and before every save. A module with a frozen teacher is stored without the
    teacher's weights (see :func:`kd3d.models.checkpoint.module_checkpoint_state`).
    """

    def __init__(self, work_dir, keep: int, log=None):
        self.work_dir, self.keep, self.log = Path(work_dir), int(keep), log
        self.folder = self.work_dir / "checkpoints"
        self.owned: set[Path] = set()
        self._teacher_fp: str | None = None

    def start_fresh(self, *, overwrite: bool, main: bool = True) -> None:
        """Check (and with ``overwrite`` clear, on the main process) the work dir of a fresh run."""
        if main:
            clean_temp_files(self.folder)
        old = list_checkpoints(self.work_dir)
        if not old:
            return
        if not overwrite:
            raise WorkDirInUseError(
                f"work dir {self.work_dir} already holds {len(old)} checkpoint(s) of an earlier run (newest "
                f"{old[-1].name}): pass --resume to continue it, --overwrite to delete them and start over, "
                "or choose another --work-dir")
        if main:
            for p in old:
                remove_checkpoint(p)
            (self.work_dir / "metrics.json").unlink(missing_ok=True)
            if self.log is not None:
                self.log.warning("--overwrite: removed %d checkpoint(s) of an earlier run from %s", len(old), self.folder)

    def adopt(self, path, *, main: bool = True) -> None:
        """Resuming from ``path``: the run owns this folder's checkpoints up to its step."""
        if main:
            clean_temp_files(self.folder)
        path, step = Path(path), checkpoint_step(path)
        if step is not None and self.folder.is_dir() and path.parent.resolve() == self.folder.resolve():
            self.owned |= {p for p in list_checkpoints(self.work_dir) if checkpoint_step(p) <= step}

    def save(self, state: dict, step: int) -> Path:
        """Write ``state`` as this run's checkpoint of ``step`` and prune its older files."""
        path = checkpoint_path(self.work_dir, step)
        atomic_save(state, path)
        self.owned.add(path)
        prune_checkpoints(self.work_dir, self.keep, owned=self.owned)
        self.owned = {p for p in self.owned if p.exists()}
        return path

    def _fingerprint(self, module: nn.Module) -> str | None:
        teacher = getattr(module, "teacher", None)
        if not isinstance(teacher, nn.Module):
            return None
        if self._teacher_fp is None:  # the teacher is frozen: one fingerprint per run
            self._teacher_fp = state_fingerprint(teacher.state_dict())
        return self._teacher_fp

    def module_state(self, module: nn.Module) -> tuple[dict, dict | None]:
        """``(model state dict, teacher record or None)`` to store for ``module``."""
        return module_checkpoint_state(module, self._fingerprint(module))

    def load_module(self, module: nn.Module, ckpt: dict, path) -> None:
        """Load a training checkpoint's ``model`` entry (teacher fingerprint checked)."""
        load_module_state(module, ckpt, path, teacher_fingerprint=self._fingerprint(module))
