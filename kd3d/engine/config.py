"""Experiment configuration: plain dataclasses, importable config files, ``--set`` overrides.

A config file is ordinary Python that defines ``CONFIG`` (an :class:`ExperimentConfig`) or a
function ``config() -> ExperimentConfig``. Variants import a base and use
:func:`dataclasses.replace` or :func:`override`::

    from configs.synth.lidar_teacher import CONFIG as BASE
    from kd3d.engine.config import override
    CONFIG = override(BASE, {"name": "lidar_student_050", "model.kwargs.width": 0.5})

:func:`load_config` accepts a path to a ``.py`` file or a name under ``configs/``
(``synth/lidar_teacher``, ``synth.lidar_teacher`` or ``nuscenes/centerpoint_voxel01``).
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import importlib.util
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class DataConfig:
    """Dataset and loader settings.

    ``dataset`` names an entry of :data:`kd3d.engine.builders.DATASETS`; ``kwargs`` go to the
    dataset factory for every split, ``train_kwargs`` / ``val_kwargs`` on top for that split
    (e.g. augmentation switches). ``batch_size`` is per process (per GPU under DDP).
    """

    dataset: str = "nuscenes"
    root: str = "datasets/nuscenes"
    version: str = "v1.0-trainval"
    train_split: str = "train"
    val_split: str = "val"
    kwargs: dict = field(default_factory=dict)
    train_kwargs: dict = field(default_factory=dict)
    val_kwargs: dict = field(default_factory=dict)
    batch_size: int = 4
    eval_batch_size: int = 1
    num_workers: int = 4


@dataclass
class ModelConfig:
    """``name`` is a key of :data:`kd3d.engine.builders.MODELS`; ``kwargs`` go to its factory."""

    name: str = "centerpoint"
    kwargs: dict = field(default_factory=dict)


@dataclass
class OptimConfig:
    """AdamW with a one-cycle schedule (cosine anneal, ``lr`` is the peak).

    Training length: ``max_steps`` when > 0, else ``epochs`` full passes over the train split.
    ``grad_clip`` is the max global L2 norm (0 disables clipping).
    """

    lr: float = 2e-4
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.99)
    pct_start: float = 0.4
    div_factor: float = 10.0
    final_div_factor: float = 1e4
    grad_clip: float = 35.0
    epochs: int = 20
    max_steps: int = 0


@dataclass
class RuntimeConfig:
    """Loop settings. Intervals count optimiser steps; 0 means "only at the end".

    ``amp``: ``"none"``, ``"bf16"`` or ``"fp16"`` (autocast on CUDA only; ignored on CPU).
    ``device``: ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    """

    work_dir: str = ""
    seed: int = 0
    amp: str = "none"
    device: str = "auto"
    ckpt_interval: int = 1000
    eval_interval: int = 0
    log_interval: int = 10
    keep_checkpoints: int = 2
    progress: bool = True
    tensorboard: bool = True
    find_unused_parameters: bool = False


@dataclass
class EvalConfig:
    """``evaluator`` is a key of :data:`kd3d.engine.evaluation.EVALUATORS`
    (``nuscenes_det``, ``nuscenes_seg``, ``kitti``, ``toy`` or ``none``); ``kwargs`` go to it."""

    evaluator: str = "nuscenes_det"
    kwargs: dict = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """One experiment. ``distill`` is an optional distillation description handed to
    :func:`kd3d.engine.builders.build_train_module` (see there); ``None`` trains ``model``."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: Any = None


class ConfigError(ValueError):
    """A config file or an override is invalid (the message names the file/key)."""


# --------------------------------------------------------------------------- loading
def configs_dir() -> Path:
    """The repository's ``configs/`` folder (next to the ``kd3d`` package)."""
    return Path(__file__).resolve().parents[2] / "configs"


def _resolve(spec: str) -> Path:
    p = Path(spec)
    if p.suffix == ".py" and p.exists():
        return p.resolve()
    name = spec[:-3] if spec.endswith(".py") else spec
    if "/" not in name and "\\" not in name:
        name = name.replace(".", "/")
    for base in (Path.cwd() / "configs", configs_dir()):
        cand = base / f"{name}.py"
        if cand.exists():
            return cand.resolve()
    raise ConfigError(
        f"config {spec!r}: no such file, and no configs/{name}.py under {Path.cwd()} or {configs_dir().parent}"
    )


def _import_file(path: Path):
    # Inside a `configs` package: import by dotted name so that variants can import their base.
    parts = []
    d = path.parent
    while (d / "__init__.py").exists():
        parts.insert(0, d.name)
        if d.name == "configs":
            root = str(d.parent)
            if root not in sys.path:
                sys.path.insert(0, root)
            return importlib.import_module(".".join(parts + [path.stem]))
        d = d.parent
    spec = importlib.util.spec_from_file_location(f"kd3d_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_config(spec: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a config file (path or name under ``configs/``) and apply ``--set`` overrides."""
    path = _resolve(str(spec))
    module = _import_file(path)
    if hasattr(module, "CONFIG"):
        cfg = module.CONFIG
    elif callable(getattr(module, "config", None)):
        cfg = module.config()
    else:
        raise ConfigError(f"config file {path}: defines neither CONFIG nor config()")
    if not isinstance(cfg, ExperimentConfig):
        raise ConfigError(f"config file {path}: CONFIG must be an ExperimentConfig, got {type(cfg).__name__}")
    return apply_overrides(cfg, overrides or [])


# --------------------------------------------------------------------------- overrides
def _parse_value(text: str, tp, key: str):
    origin = typing.get_origin(tp)
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {key}={text}: expected a boolean (true/false)")
    if tp in (int, float):
        try:
            return tp(ast.literal_eval(text)) if tp is int else float(text)
        except (ValueError, SyntaxError) as exc:
            raise ConfigError(f"--set {key}={text}: expected {tp.__name__}") from exc
    if tp is str:
        return text
    literal = None
    try:
        literal = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if tp in (tuple, list, dict) or origin in (tuple, list, dict):
            raise ConfigError(f"--set {key}={text}: expected a Python literal of type {tp}") from None
        return text  # Any / str-like: keep the raw string
    if (tp in (tuple, list) or origin in (tuple, list)) and isinstance(literal, (list, tuple)):
        return tuple(literal) if (tp is tuple or origin is tuple) else list(literal)
    if (tp is dict or origin is dict) and not isinstance(literal, dict):
        raise ConfigError(f"--set {key}={text}: expected a dict literal")
    return literal


def _set_path(obj, keys: list[str], value, full: str, raw: bool):
    head, rest = keys[0], keys[1:]
    if dataclasses.is_dataclass(obj):
        names = [f.name for f in dataclasses.fields(obj)]
        if head not in names:
            raise ConfigError(f"--set {full}: unknown key {head!r} in {type(obj).__name__}; valid keys: {names}")
        hints = typing.get_type_hints(type(obj))
        current = getattr(obj, head)
        if rest:
            if current is None:
                raise ConfigError(f"--set {full}: {head!r} is None, cannot set a sub-key")
            new = _set_path(current, rest, value, full, raw)
        else:
            new = _parse_value(value, hints.get(head, Any), full) if raw else value
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, dict):
        out = dict(obj)
        if rest:
            if head not in obj:
                raise ConfigError(f"--set {full}: unknown key {head!r}; valid keys: {sorted(obj)}")
            out[head] = _set_path(obj[head], rest, value, full, raw)
        else:
            tp = type(obj[head]) if head in obj and obj[head] is not None else Any
            out[head] = _parse_value(value, tp, full) if raw else value
        return out
    raise ConfigError(f"--set {full}: cannot set {head!r} inside a {type(obj).__name__}")


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``["a.b=value", ...]``: values are parsed to the field's declared type
    (bool/int/float/str/tuple/list/dict; ``Any`` and dict entries via ``ast.literal_eval``,
    falling back to the raw string). Unknown keys raise :class:`ConfigError`."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE (e.g. optim.lr=1e-3)")
        key, value = item.split("=", 1)
        cfg = _set_path(cfg, key.strip().split("."), value, key.strip(), raw=True)
    return cfg


def override(cfg: ExperimentConfig, values: dict[str, Any]) -> ExperimentConfig:
    """Like :func:`apply_overrides` with already-typed Python values: ``{"optim.lr": 1e-3}``."""
    for key, value in values.items():
        cfg = _set_path(cfg, key.split("."), value, key, raw=False)
    return cfg


# --------------------------------------------------------------------------- serialisation
def config_to_dict(cfg: ExperimentConfig) -> dict:
    """A JSON-compatible dict of the config (the ``distill`` section as its dataclass fields)."""

    def conv(x):
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return {f.name: conv(getattr(x, f.name)) for f in dataclasses.fields(x)}
        if isinstance(x, dict):
            return {str(k): conv(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [conv(v) for v in x]
        if isinstance(x, (str, int, float, bool)) or x is None:
            return x
        if isinstance(x, Path):
            return str(x)
        return repr(x)

    return conv(cfg)


def config_to_json(cfg: ExperimentConfig) -> str:
    return json.dumps(config_to_dict(cfg), indent=2, sort_keys=True)
