"""Shared helpers for the engine tests: small toy configs and state comparison."""
from __future__ import annotations

import dataclasses

import torch

from kd3d.engine.config import load_config, override
from kd3d.testing import toy_config_path


def toy_config(**values):
    """kd3d/testing/toy_configs/toy.py with quiet logging plus dotted overrides, e.g. ``toy_config(**{"optim.epochs": 2})``."""
    cfg = load_config(toy_config_path())
    cfg = dataclasses.replace(cfg, runtime=dataclasses.replace(cfg.runtime, progress=False, tensorboard=False))
    return override(cfg, values)


def assert_state_equal(a: dict, b: dict, exact: bool = True, atol: float = 0.0):
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), f"{k} differs: max |d| = {(a[k] - b[k]).abs().max()}"
        else:
            torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=lambda m: f"{k}: {m}")
