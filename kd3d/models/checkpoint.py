"""Checkpoint files, in one place for the engine and the distiller (torch only).

* **Writing**: :func:`atomic_save` writes ``torch.save`` output to a hidden temp file in the same
  folder, fsyncs it, moves it over ``path`` and then writes the sidecar ``<path>.sha256``
  (``sha256sum`` format, also written atomically). Temp files left by an interrupted save
  (``.<name>.tmp<pid>`` of a process that is gone) are removed on the next save.
* **Reading**: :func:`load_checkpoint` verifies the sidecar (a mismatch raises
  :class:`CheckpointError` naming the file), then loads with ``weights_only=True``. A file
  without a sidecar (an external checkpoint) loads with a logged warning.
* **Which weights**: :func:`state_dict_from` takes ``student`` (a distillation checkpoint's
  deployable student; skipped with ``prefer_student=False``), then ``model``, then
  ``state_dict``, else the dict itself (a bare state dict).
* **Which file**: checkpoint files are ``ckpt_step<N>.pth`` (the pattern is anchored); the
  latest is the largest parsed ``N``, never the lexicographically last name.
* **Mismatches**: :func:`load_state_dict_checked` raises one line listing at most 5 keys of each
  kind (missing, unexpected, shape) with their counts, naming the file.
* **Frozen teachers**: :func:`module_checkpoint_state` leaves a module's ``teacher.*`` weights
  out and records ``{"path", "sha256"}`` (the teacher's checkpoint file and a fingerprint of its
  weights) instead; :func:`load_module_state` checks the fingerprint against the teacher the
  module holds now and loads everything else.
"""
from __future__ import annotations

import hashlib
import logging
import os
import pickle
import re
from pathlib import Path

import torch
from torch import nn

from kd3d.errors import CheckpointError, CheckpointNotFoundError

FORMAT = "kd3d-ckpt-1"
CKPT_RE = re.compile(r"^ckpt_step(\d+)\.pth$")
CHECKSUM_SUFFIX = ".sha256"
STATE_KEYS = ("student", "model", "state_dict")
TEACHER_PREFIX = "teacher."
_TMP_RE = re.compile(r"^\..+\.tmp(\d+)$")
_SHOW = 5

log = logging.getLogger(__name__)

__all__ = ["FORMAT", "CKPT_RE", "CheckpointError", "CheckpointNotFoundError", "atomic_save", "load_checkpoint",
           "verify_checksum", "file_sha256", "checksum_path", "state_dict_from", "load_state_dict_checked",
           "load_weights", "checkpoint_path", "checkpoint_step", "list_checkpoints", "latest_checkpoint",
           "resolve_checkpoint", "remove_checkpoint", "prune_checkpoints", "clean_temp_files",
           "state_fingerprint", "module_checkpoint_state", "load_module_state"]


# --------------------------------------------------------------------------- files and checksums
def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checksum_path(path) -> Path:
    """The sidecar ``<path>.sha256`` of a checkpoint file."""
    path = Path(path)
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_save(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, then its checksum sidecar: a crash never leaves
    a truncated file under ``path``, and a file whose bytes change later fails to load."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_temp_files(path.parent)
    checksum_path(path).unlink(missing_ok=True)  # never pair a new file with an old checksum
    _write_atomic(path, lambda f: torch.save(obj, f))
    line = f"{file_sha256(path)}  {path.name}\n".encode()  # `sha256sum -c` format
    _write_atomic(checksum_path(path), lambda f: f.write(line))
    return path


def verify_checksum(path) -> bool:
    """Compare ``path`` with its sidecar: True when verified, False (and a warning) when there is
    no sidecar; raises :class:`CheckpointError` naming the file on a mismatch."""
    path = Path(path)
    side = checksum_path(path)
    if not side.is_file():
        log.warning("checkpoint %s has no checksum file %s: loading it unverified", path, side.name)
        return False
    fields = side.read_text().split()
    expected = fields[0].lower() if fields else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise CheckpointError(f"checkpoint {path}: checksum file {side.name} does not hold a sha256 digest")
    actual = file_sha256(path)
    if actual != expected:
        raise CheckpointError(f"checkpoint {path}: sha256 {actual[:16]}... differs from {side.name} "
                              f"({expected[:16]}...): the file is corrupt or was changed after it was saved")
    return True


def load_checkpoint(path, map_location="cpu") -> dict:
    """Verify the checksum and load with ``weights_only=True``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path}: no such file")
    verify_checksum(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as exc:
        raise CheckpointError(f"checkpoint {path}: cannot be loaded with weights_only=True "
                              f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path}: expected a dict, got {type(state).__name__}")
    return state


# --------------------------------------------------------------------------- which weights
def state_dict_from(ckpt: dict, path="<checkpoint>", *, prefer_student: bool = True) -> dict:
    """The weights inside a checkpoint dict, by the one precedence ``student`` (only with
    ``prefer_student``), ``model``, ``state_dict``; a dict without these is a bare state dict."""
    for key in STATE_KEYS if prefer_student else STATE_KEYS[1:]:
        if isinstance(ckpt.get(key), dict):
            return ckpt[key]
    if ckpt.get("format") == FORMAT:
        raise CheckpointError(f"checkpoint {path}: has no 'model' entry")
    return ckpt


def _few(label: str, items: list[str]) -> str:
    head = ", ".join(items[:_SHOW]) + (", ..." if len(items) > _SHOW else "")
    return f"{label}: {head} ({len(items)} in all)"


def load_state_dict_checked(module: nn.Module, state_dict: dict, source="<checkpoint>", *,
                            strict: bool = True) -> None:
    """``module.load_state_dict`` that never loads partially by accident: shape mismatches (and,
    with ``strict``, missing or unexpected keys) raise one :class:`CheckpointError` line naming
    ``source`` and at most 5 keys of each kind with their counts."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state_dict)
                    if hasattr(state_dict[k], "shape") and tuple(state_dict[k].shape) != tuple(own[k].shape))
    if shapes or (strict and (missing or unexpected)):
        parts = [_few(label, items) for label, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                                          ("shape mismatches", shapes)) if items]
        raise CheckpointError(f"checkpoint {source} does not match {type(module).__name__}: " + "; ".join(parts))
    module.load_state_dict(state_dict, strict=strict)


def load_weights(module: nn.Module, path, *, prefer_student: bool = True, strict: bool = True) -> tuple[Path, dict]:
    """Load a checkpoint file, or the latest one of a work dir / ``checkpoints`` folder, into
    ``module``. Returns ``(file, checkpoint dict)``."""
    path = resolve_checkpoint(path)
    ckpt = load_checkpoint(path)
    load_state_dict_checked(module, state_dict_from(ckpt, path, prefer_student=prefer_student), path, strict=strict)
    return path, ckpt


# --------------------------------------------------------------------------- which file
def checkpoint_path(work_dir, step: int) -> Path:
    return Path(work_dir) / "checkpoints" / f"ckpt_step{step:08d}.pth"


def checkpoint_step(path) -> int | None:
    """The step ``N`` of a ``ckpt_step<N>.pth`` file name, None for any other name."""
    m = CKPT_RE.match(Path(path).name)
    return int(m.group(1)) if m else None


def _folder(path) -> Path:
    path = Path(path)
    return path / "checkpoints" if (path / "checkpoints").is_dir() else path


def list_checkpoints(work_dir) -> list[Path]:
    """``ckpt_step<N>.pth`` files of ``work_dir/checkpoints`` (or of ``work_dir`` itself when it
    has no such folder), sorted by the parsed step."""
    folder = _folder(work_dir)
    if not folder.is_dir():
        return []
    found = [(s, p.name, p) for p in folder.iterdir() if (s := checkpoint_step(p)) is not None and p.is_file()]
    return [p for _, _, p in sorted(found)]


def latest_checkpoint(work_dir) -> Path | None:
    ckpts = list_checkpoints(work_dir)
    return ckpts[-1] if ckpts else None


def resolve_checkpoint(path) -> Path:
    """A checkpoint file as is; a work dir or checkpoints folder -> its latest checkpoint."""
    path = Path(path)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointNotFoundError(f"checkpoint folder {path}: no ckpt_step<N>.pth file in {_folder(path)}")
        return latest
    if not path.is_file():
        raise CheckpointNotFoundError(f"checkpoint {path}: no such file or folder")
    return path


def remove_checkpoint(path) -> None:
    """Delete a checkpoint file and its checksum sidecar."""
    Path(path).unlink(missing_ok=True)
    checksum_path(path).unlink(missing_ok=True)


def prune_checkpoints(work_dir, keep: int, *, owned=None) -> list[Path]:
    """Delete all but the ``keep`` highest-step checkpoints (``keep <= 0`` keeps everything).
    ``owned``: only these files (the current run's) are candidates; files of other runs are never
    touched. Returns the removed files."""
    if keep <= 0:
        return []
    ckpts = list_checkpoints(work_dir)
    if owned is not None:
        mine = {Path(p).resolve() for p in owned}
        ckpts = [p for p in ckpts if p.resolve() in mine]
    removed = ckpts[:-keep]
    for p in removed:
        remove_checkpoint(p)
    return removed


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one owned by another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_temp_files(folder) -> list[Path]:
    """Remove ``.<name>.tmp<pid>`` files of interrupted saves in ``folder`` (those of this process
    or of a process that no longer exists). Returns the removed paths."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for p in folder.iterdir():
        m = _TMP_RE.match(p.name)
        if m and p.is_file() and (int(m.group(1)) == os.getpid() or not pid_alive(int(m.group(1)))):
            p.unlink(missing_ok=True)
            removed.append(p)
    if removed:
        log.info("removed %d temp file(s) of interrupted saves in %s", len(removed), folder)
    return removed


# --------------------------------------------------------------------------- frozen teachers
def state_fingerprint(state_dict: dict) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a state dict (order-independent)."""
    h = hashlib.sha256()
    for k in sorted(state_dict):
        v = state_dict[k]
        h.update(k.encode() + b"\0")
        if isinstance(v, torch.Tensor):
            t = v.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"{t.dtype}{tuple(v.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(v).encode())
    return h.hexdigest()


def _teacher(module: nn.Module) -> nn.Module | None:
    t = getattr(module, "teacher", None)
    return t if isinstance(t, nn.Module) else None


def module_checkpoint_state(module: nn.Module, teacher_fingerprint: str | None = None) -> tuple[dict, dict | None]:
    """``(state_dict, teacher record)`` to store for ``module``. A module with a frozen ``teacher``
    submodule (a Distiller) is stored without the ``teacher.*`` weights; the record holds the
    teacher's checkpoint path (``module.teacher_checkpoint``, None if untrained) and ``sha256``
    (:func:`state_fingerprint` of its weights; pass it to skip recomputing). Others: record None."""
    state = module.state_dict()
    teacher = _teacher(module)
    if teacher is None:
        return state, None
    fp = teacher_fingerprint or state_fingerprint(teacher.state_dict())
    path = getattr(module, "teacher_checkpoint", None)
    state = {k: v for k, v in state.items() if not k.startswith(TEACHER_PREFIX)}
    return state, {"path": None if path is None else str(path), "sha256": fp}


def load_module_state(module: nn.Module, ckpt: dict, source="<checkpoint>", *, teacher_fingerprint: str | None = None,
                      prefer_student: bool = False) -> None:
    """Load ``ckpt`` (a kd3d checkpoint dict) into ``module``. When the checkpoint records its
    teacher instead of carrying it, the module's current teacher (loaded from its own checkpoint)
    must have the recorded fingerprint, else :class:`CheckpointError`; its weights are kept."""
    state = state_dict_from(ckpt, source, prefer_student=prefer_student)
    record = ckpt.get("teacher")
    teacher = _teacher(module)
    if isinstance(record, dict) and teacher is not None:
        fp = teacher_fingerprint or state_fingerprint(teacher.state_dict())
        if fp != record.get("sha256"):
            now = getattr(module, "teacher_checkpoint", None)
            raise CheckpointError(
                f"checkpoint {source}: it was trained with teacher {record.get('path')} (weights sha256 "
                f"{str(record.get('sha256'))[:16]}...), but the teacher loaded now from {now} has sha256 {fp[:16]}...: "
                "resume with the original teacher checkpoint or start a fresh run")
        state = dict(state)
        state.update({TEACHER_PREFIX + k: v for k, v in teacher.state_dict().items()})
    load_state_dict_checked(module, state, source)
