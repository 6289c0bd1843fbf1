"""Name -> ``"module:callable"`` tables, resolved lazily (layer 0: imports only kd3d.errors).

A registry maps a config name to a target string; the module is imported only when that name
is built (no import side effects, optional dependencies stay optional). A config may also give
the target itself (``"package.module:callable"``), which is how tests build the models,
datasets and evaluators of ``kd3d.testing`` that are not registered in the product's tables.
"""
from __future__ import annotations

import importlib

from kd3d.errors import ConfigError


def import_target(target: str, what: str):
    """The object named by ``"module:attr"``; ``what`` names the config field in errors."""
    module, sep, attr = target.partition(":")
    if not sep or not module or not attr:
        raise ConfigError(f"{what}: expected 'package.module:callable', got {target!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what}: cannot import {target} ({exc})") from exc


def resolve(table: dict[str, str], name: str, field: str):
    """``table[name]`` imported, or ``name`` itself when it is a ``"module:callable"`` path."""
    if name in table:
        return import_target(table[name], f"{field}={name!r}")
    if ":" in name:
        return import_target(name, field)
    raise ConfigError(f"{field}: unknown name {name!r}; known: {sorted(table)} (or 'package.module:callable')")
