"""Evaluation fixtures: one tiny synthetic nuScenes dataset (v1.0-mini, 2 scenes x 3 samples,
real devkit format incl. lidarseg) generated once per session by ``kd3d.data.synth``."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_nusc(tmp_path_factory):
    """(NuScenes object, generator summary)."""
    pytest.importorskip("nuscenes")
    from nuscenes import NuScenes

    from kd3d.data.synth import generate_nuscenes

    summary = generate_nuscenes(tmp_path_factory.mktemp("eval_nusc"), scenes=2, samples_per_scene=3, seed=3,
                                image_size=(32, 18), sweeps=0, progress=False)
    return NuScenes(version=summary["version"], dataroot=summary["dataroot"], verbose=False), summary
