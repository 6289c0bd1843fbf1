"""Test scaffolding: never imported by the product, never registered in its tables.

* :mod:`kd3d.testing.toy`: a tiny BEV detector, an in-memory dataset and a centre-distance AP
  (configs name them by ``"module:callable"`` path: ``TOY_MODEL``, ``TOY_DATASET``,
  ``TOY_EVALUATOR``); their experiment configs are in ``toy_configs/`` (:func:`toy_config_path`).
* :mod:`kd3d.testing.devkit_ref`: the official nuscenes-devkit pipeline on in-memory boxes (oracle).
* :mod:`kd3d.testing.nuscenes_cases` / :mod:`kd3d.testing.kitti_cases`: generated detection
  cases (in-memory nuScenes boxes; KITTI label/result folders) for evaluator tests and benches.
* :mod:`kd3d.testing.weights`: fixed-seed random weights for the mmdet3d oracle fixtures (torch only).

Importing this package imports nothing heavy.
"""
from __future__ import annotations

from pathlib import Path

TOY_CONFIGS = Path(__file__).resolve().parent / "toy_configs"


def toy_config_path(name: str = "toy") -> str:
    """Path of a toy rig config file: ``"toy"`` (the model), ``"distill_fitnet"``, ``"distill_distillbev"``."""
    path = TOY_CONFIGS / f"{name}.py"
    if not path.is_file() or name.startswith("_"):
        known = sorted(p.stem for p in TOY_CONFIGS.glob("*.py") if not p.stem.startswith("_"))
        raise FileNotFoundError(f"kd3d.testing: no toy config {name!r} in {TOY_CONFIGS}; known: {known}")
    return str(path)
