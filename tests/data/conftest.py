"""Shared fixtures: tiny synthetic datasets in the real nuScenes / KITTI formats (generated once
per test session into temp dirs by ``kd3d.data.synth``)."""
from __future__ import annotations

import pytest
from synth_params import SYNTH_KITTI, SYNTH_NUSC


@pytest.fixture(scope="session")
def synth_nuscenes(tmp_path_factory) -> dict:
    """Summary dict of a 2-scene x 3-sample v1.0-mini dataset (``summary['dataroot']``,
    ``summary['version']``); parameters in ``SYNTH_NUSC``."""
    from kd3d.data.synth import generate_nuscenes

    return generate_nuscenes(tmp_path_factory.mktemp("synth_nusc"), **SYNTH_NUSC)


@pytest.fixture(scope="session")
def synth_kitti(tmp_path_factory) -> dict:
    """Summary dict of a 4-frame KITTI object dataset (``summary['root']``)."""
    from kd3d.data.synth import generate_kitti

    return generate_kitti(tmp_path_factory.mktemp("synth_kitti"), **SYNTH_KITTI)
