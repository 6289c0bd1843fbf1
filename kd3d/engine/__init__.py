"""Training and evaluation engine: configs, builders, the training loop, checkpoints, logs.

Public API (imported lazily, so ``import kd3d.engine`` stays cheap)::

    from kd3d.engine import ExperimentConfig, load_config, run_experiment, evaluate
    metrics = run_experiment(load_config("synth/lidar_teacher"), "work_dirs/lidar_teacher")
    metrics = evaluate(cfg, "work_dirs/lidar_teacher/checkpoints/ckpt_step00000600.pth", "out/")
"""
from __future__ import annotations

_EXPORTS = {
    "ExperimentConfig": "kd3d.engine.config", "DataConfig": "kd3d.engine.config",
    "ModelConfig": "kd3d.engine.config", "OptimConfig": "kd3d.engine.config",
    "RuntimeConfig": "kd3d.engine.config", "EvalConfig": "kd3d.engine.config",
    "ConfigError": "kd3d.engine.config", "load_config": "kd3d.engine.config",
    "apply_overrides": "kd3d.engine.config", "override": "kd3d.engine.config",
    "Trainer": "kd3d.engine.trainer", "run_experiment": "kd3d.engine.trainer",
    "evaluate": "kd3d.engine.trainer", "load_model_weights": "kd3d.engine.checkpoint",
    "latest_checkpoint": "kd3d.engine.checkpoint",
    "build_model": "kd3d.models.build", "build_dataset": "kd3d.engine.builders",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kd3d.engine' has no attribute {name!r}")
