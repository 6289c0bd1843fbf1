"""NaN/inf points dropped by the loaders are reported once per file as a logging warning."""
import logging

import numpy as np
import pytest

from kd3d.data.kitti import KittiDataset
from kd3d.data.nuscenes import NuScenesDataset
from tiny_datasets import write_tiny_kitti, write_tiny_nuscenes


@pytest.fixture
def kd3d_caplog(caplog):
    """caplog that also sees records of the ``kd3d`` logger (the CLI turns its propagation off)."""
    logger = logging.getLogger("kd3d")
    propagate, logger.propagate = logger.propagate, True
    caplog.set_level(logging.WARNING)
    yield caplog
    logger.propagate = propagate


def _nonfinite_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "NaN/inf" in r.getMessage()]


def test_nuscenes_nonfinite_points_warn_once_per_file(tmp_path, kd3d_caplog):
    write_tiny_nuscenes(tmp_path)
    ds = NuScenesDataset(tmp_path, "v1.0-mini", "mini_train", sweeps=2, load_images=False, load_lidarseg=False)
    e = ds.entry(1)
    key, sweep = tmp_path / e["lidar"]["path"], tmp_path / e["sweeps"][0]["path"]
    raw = np.fromfile(key, np.float32).reshape(-1, 5)
    raw[5, 0], raw[7, 3], raw[9, 2] = np.nan, np.inf, -np.inf
    raw.tofile(key)
    sw = np.fromfile(sweep, np.float32).reshape(-1, 5)
    sw[0, 1] = np.nan
    sw.tofile(sweep)

    n = len(raw)
    s = ds[1]
    assert s.num_key_points == n - 3 and np.isfinite(s.points).all()
    ds[1]  # a second epoch reads the same files: no second warning
    msgs = [r.getMessage() for r in _nonfinite_warnings(kd3d_caplog)]
    assert len(msgs) == 2, msgs
    assert msgs[0] == f"{key}: dropped 3 of {n} points with a NaN/inf coordinate or intensity"
    assert msgs[1].startswith(f"{sweep}: dropped 1 of ")


def test_kitti_nonfinite_points_warn_once_per_file(tmp_path, kd3d_caplog):
    write_tiny_kitti(tmp_path)
    ds = KittiDataset(tmp_path, "train", load_images=False)
    path = tmp_path / "training" / "velodyne" / f"{ds.tokens[0]}.bin"
    raw = np.fromfile(path, np.float32).reshape(-1, 4)
    raw[0, 3] = np.nan
    raw.tofile(path)
    assert len(ds[0].points) == len(raw) - 1
    ds[0]
    msgs = [r.getMessage() for r in _nonfinite_warnings(kd3d_caplog)]
    assert msgs == [f"{path}: dropped 1 of {len(raw)} points with a NaN/inf coordinate or intensity"]
