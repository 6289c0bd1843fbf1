"""Experiment configuration: plain dataclasses, config files found by name, ``--set`` overrides.

A config file is ordinary Python that defines ``CONFIG`` (an :class:`ExperimentConfig`) or a
function ``config() -> ExperimentConfig``. Variants load their base by name and use
:func:`dataclasses.replace` or :func:`override`::

    from kd3d.engine.config import load_base, override
    CONFIG = override(load_base("synth/lidar_teacher"), {"name": "lidar_student_050",
                                                          "model.kwargs.width": 0.5})

:func:`load_config` accepts a name of a shipped config (``synth/lidar_teacher`` or
``synth.lidar_teacher``; see :mod:`kd3d.engine.config_files` for where they are found), a path to
a ``.py`` file, or a run's saved ``config.json`` (:func:`config_to_json` / :func:`config_from_dict`
round-trip).
"""
from __future__ import annotations

import ast
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kd3d.distill.config import DistillConfig
from kd3d.engine.config_files import configs_dir, load_module, resolve_config
from kd3d.errors import ConfigError
from kd3d.models.build import ModelConfig

__all__ = ["ConfigError", "DataConfig", "DistillConfig", "EvalConfig", "ExperimentConfig", "ModelConfig",
           "OptimConfig", "RuntimeConfig", "apply_overrides", "config_to_dict", "config_to_json", "load_config",
           "override"]


@dataclass
class DataConfig:
    """Dataset and loader settings.

    ``dataset`` names an entry of :data:`kd3d.engine.builders.DATASETS` (or is a
    ``"package.module:callable"`` path); ``kwargs`` go to the
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
    ``threads``: torch intra-op threads per process on CPU, set once at start; 0 (auto) follows
    ``OMP_NUM_THREADS`` when set, else the usable cores per process, or 1 thread when the load
    average at start already fills the cores (a busy machine; the measurement is in
    :mod:`kd3d.engine.dist`). Set 1 yourself when running several jobs side by side.
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
    threads: int = 0


@dataclass
class EvalConfig:
    """``evaluator`` is a key of :data:`kd3d.engine.evaluation.EVALUATORS` (``nuscenes_det``,
    ``nuscenes_seg``, ``kitti`` or ``none``) or a ``"package.module:callable"`` path; ``kwargs``
    go to it."""

    evaluator: str = "nuscenes_det"
    kwargs: dict = field(default_factory=dict)


@dataclass
class ExperimentConfig:
    """One experiment. ``model`` is a :class:`~kd3d.models.build.ModelConfig`; ``distill`` a
    :class:`~kd3d.distill.config.DistillConfig` (the student is ``model``, see
    :func:`kd3d.engine.builders.build_train_module`) or ``None`` to train ``model`` alone."""

    name: str = "experiment"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig | None = None


# --------------------------------------------------------------------------- loading
def load_config(spec: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Load a config by name (``synth/lidar_teacher``, looked up in :func:`configs_dir` only,
    never in the current directory) or by file path (``.py``, or a run's saved ``config.json``),
    then apply ``--set`` overrides."""
    path = resolve_config(spec)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"config {path}: not readable as JSON ({exc})") from exc
        cfg = config_from_dict(data, source=str(path))
    else:
        cfg = _config_of_module(load_module(path))
    return apply_overrides(cfg, overrides or [])


def load_base(name: str) -> ExperimentConfig:
    """The config a variant starts from, by name: ``LIDAR = load_base("synth/lidar_teacher")``.
    Use :func:`load_base_module` for the base file's other module-level names (``POINT_RANGE``)."""
    return _config_of_module(load_module(name))


def _config_of_module(module) -> ExperimentConfig:
    """The ``ExperimentConfig`` an executed config module defines (``CONFIG`` or ``config()``)."""
    where = getattr(module, "__file__", module.__name__)
    if hasattr(module, "CONFIG"):
        cfg = module.CONFIG
    elif callable(getattr(module, "config", None)):
        cfg = module.config()
    else:
        raise ConfigError(f"config file {where}: defines neither CONFIG nor config()")
    if not isinstance(cfg, ExperimentConfig):
        raise ConfigError(f"config file {where}: CONFIG must be an ExperimentConfig, got {type(cfg).__name__}")
    return cfg


def load_base_module(name: str):
    """The executed module of a config file, by name (its constants: ``.POINT_RANGE``, ...)."""
    return load_module(name)


# --------------------------------------------------------------------------- overrides
_NONE_WORDS = ("none", "null")


def _optional_inner(tp):
    """``X`` for ``X | None`` / ``Optional[X]``, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0]
    return None


def _parse_value(text: str, tp, key: str):
    origin = typing.get_origin(tp)
    inner = _optional_inner(tp)
    if inner is not None:
        if text.strip().lower() in _NONE_WORDS:
            return None
        return _parse_value(text, inner, key)
    if dataclasses.is_dataclass(tp):
        names = [f.name for f in dataclasses.fields(tp)]
        raise ConfigError(f"--set {key}={text}: {key!r} is a section ({tp.__name__}), not a value; set one of "
                          f"its fields instead, e.g. --set {key}.{names[0]}=... (fields: {', '.join(names)})")
    if tp is bool:
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"--set {key}={text}: expected a boolean (true/false)")
    if tp is int:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 1e3
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"--set {key}={text}: expected an integer")
        return value
    if tp is float:
        try:
            return float(text)
        except ValueError as exc:
            raise ConfigError(f"--set {key}={text}: expected a number") from exc
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


def _parse_entry(text: str, current, key: str):
    """A ``--set`` value for a free-form dict entry, typed by its current value; an int entry
    also takes a float (kept as given, never truncated), a None entry any literal."""
    if isinstance(current, int) and not isinstance(current, bool):
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError):
            value = None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"--set {key}={text}: expected a number")
        return value
    return _parse_value(text, Any if current is None else type(current), key)


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
        elif raw:
            new = _parse_value(value, hints.get(head, Any), full)
        else:
            new = value
        return dataclasses.replace(obj, **{head: new})
    if isinstance(obj, dict):
        out = dict(obj)
        if rest:
            if head not in obj:
                raise ConfigError(f"--set {full}: unknown key {head!r}; valid keys: {sorted(obj)}")
            out[head] = _set_path(obj[head], rest, value, full, raw)
        else:
            out[head] = _parse_entry(value, obj.get(head), full) if raw else value
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


def _from_plain(value, tp, where: str):
    """Rebuild a value of declared type ``tp`` from its JSON form (see :func:`config_from_dict`)."""
    inner = _optional_inner(tp)
    if inner is not None:
        return None if value is None else _from_plain(value, inner, where)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected an object for {tp.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {unknown} in {tp.__name__}; valid: {sorted(names)}")
        return tp(**{k: _from_plain(v, hints.get(k, Any), f"{where}.{k}") for k, v in value.items()})
    origin = typing.get_origin(tp)
    if (tp is tuple or origin is tuple) and isinstance(value, list):
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def config_from_dict(data: dict, source: str = "config") -> ExperimentConfig:
    """Inverse of :func:`config_to_dict`: a saved ``config.json`` (or a checkpoint's ``config``)
    back to a typed :class:`ExperimentConfig` (sections, including ``distill``, as their
    dataclasses; tuple fields as tuples). Fields missing from ``data`` keep their defaults;
    unknown fields raise :class:`ConfigError` naming ``source``. Free-form dicts (``kwargs``)
    come back as JSON gives them (tuples inside them as lists)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a JSON object, got {type(data).__name__}")
    return _from_plain(data, ExperimentConfig, source)
