"""Finding and loading experiment config files.

The shipped configs live in the source checkout's top-level ``configs/`` folder; a wheel carries
the same files as ``kd3d/configs/`` (``setup.py`` maps them there). :func:`configs_dir` returns
whichever exists. A config is named by its path under that folder without ``.py``
(``synth/lidar_teacher``; ``synth.lidar_teacher`` works too). Names are only ever looked up in
:func:`configs_dir`, never in the current directory; a spec ending in ``.py`` (or ``.json``, a
saved ``config.json``) is an explicit file path instead.

Files are executed by path under a private module name (``_kd3d_config__synth__lidar_teacher``):
nothing is put on ``sys.path`` and no package named ``configs`` is imported. A variant loads its
base by name through :func:`kd3d.engine.config.load_base` (or :func:`load_base_module` for the
base's module-level constants). Modules are cached per (path, modification time).
"""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from kd3d.errors import ConfigError

_CACHE: dict[Path, tuple[int, ModuleType]] = {}
_LOADING: list[Path] = []


def configs_dir() -> Path:
    """The folder holding the shipped configs: ``kd3d/configs`` in an installed wheel, else the
    source checkout's top-level ``configs/`` (next to the ``kd3d`` package)."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "configs"
    if installed.is_dir():
        return installed
    return package.parent / "configs"


def list_configs() -> list[str]:
    """Names of all shipped configs (``synth/lidar_teacher``, ...), sorted."""
    root = configs_dir()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.py")
                  if p.name != "__init__.py")


def resolve_config(spec: str | Path) -> Path:
    """A config spec -> the file it names.

    ``*.py`` / ``*.json``: a file path (relative to the current directory) when that file exists;
    a ``.py`` spec that is not a file is then tried as a name. Anything else is a name under
    :func:`configs_dir` (``synth/lidar_teacher`` or ``synth.lidar_teacher``).
    """

    text = str(spec)
    p = Path(text).expanduser()
    if p.suffix in (".py", ".json") and p.is_file():
        return p.resolve()
    if p.suffix == ".json":
        raise ConfigError(f"config {text!r}: no such file")
    name = text[:-3] if text.endswith(".py") else text
    if "/" not in name and "\\" not in name:
        name = name.replace(".", "/")
    cand = configs_dir() / f"{name}.py"
    if cand.is_file() and cand.name != "__init__.py":
        return cand.resolve()
    close = [n for n in list_configs() if n.split("/")[-1] == name.split("/")[-1]]
    hint = f" (did you mean {', '.join(close)}?)" if close else " (`kd3d config list` lists them)"
    raise ConfigError(f"config {text!r}: no such file, and no config named {name!r} in {configs_dir()}{hint}")


def _module_name(path: Path) -> str:
    try:
        rel = path.relative_to(configs_dir().resolve()).with_suffix("").as_posix()
    except ValueError:
        rel = path.with_suffix("").as_posix()
    return "_kd3d_config__" + re.sub(r"\W", "_", rel.replace("/", "__"))


def load_module(spec: str | Path) -> ModuleType:
    """Execute a config file (by :func:`resolve_config`) as a private module; cached."""

    path = resolve_config(spec)
    if path.suffix != ".py":
        raise ConfigError(f"config {path}: a Python config file is needed here, got a {path.suffix} file")
    mtime = path.stat().st_mtime_ns
    cached = _CACHE.get(path)
    if cached is not None and cached[0] == mtime:
        return cached[1]
    if path in _LOADING:
        chain = " -> ".join(str(p.name) for p in _LOADING + [path])
        raise ConfigError(f"config {path}: loads itself through its bases ({chain})")
    name = _module_name(path)
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses defined in a config look their module up
    _LOADING.append(path)
    try:
        module_spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    finally:
        _LOADING.pop()
    _CACHE[path] = (mtime, module)
    return module
