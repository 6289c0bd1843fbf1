"""Benchmark v2 training targets (issue 12): boxes no LiDAR point falls in are dropped from the
training targets of every bench config, as the nuScenes evaluation drops them from its GT."""
import dataclasses

import numpy as np
import pytest

from kd3d.engine.builders import build_dataset
from kd3d.engine.config import load_base, override
from kd3d.engine.config_files import list_configs

BENCH = [n for n in list_configs() if n.startswith("bench/")]
DETECTION = [n for n in BENCH if "seg" not in n]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from kd3d.data.synth import generate_nuscenes

    return generate_nuscenes(tmp_path_factory.mktemp("bench_v2"), scenes=2, samples_per_scene=2, seed=12,
                             version="v1.0-trainval", image_size=(64, 36), sweeps=0, progress=False)["dataroot"]


def test_every_bench_detection_config_trains_on_boxes_with_points():
    assert len(DETECTION) >= 9, DETECTION
    for name in DETECTION:
        cfg = load_base(name)
        assert (cfg.data.root, cfg.data.train_split, cfg.data.val_split) == \
            ("datasets/bench_v2/nuscenes", "train", "val"), name
        filters = [t for t in cfg.data.train_kwargs["transforms"] if t[0] == "BoxRangeFilter"]
        assert len(filters) == 1 and filters[0][1]["min_points"] == 1, (name, filters)


def test_camera_student_targets_drop_exactly_the_boxes_without_points(synth_root):
    cfg = load_base("bench/camera_student")
    cfg = override(cfg, {"data.root": str(synth_root), "data.kwargs.load_images": False})
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train_kwargs={"transforms": [
        t for t in cfg.data.train_kwargs["transforms"] if t[0] != "ImageResizeCrop"]}))
    raw = build_dataset(dataclasses.replace(cfg.data, train_kwargs={}), "train", train=True)
    ds = build_dataset(cfg.data, "train", train=True)
    dropped = 0
    for i in range(len(ds)):
        r, s = raw[i], ds[i]
        inside = r.gt_boxes.in_range([-51.2, -51.2, 51.2, 51.2]) & (r.gt_labels >= 0)
        keep = inside & (r.gt_num_points >= 1)
        dropped += int((inside & ~keep).sum())
        np.testing.assert_array_equal(s.gt_num_points, r.gt_num_points[keep])
        np.testing.assert_allclose(s.gt_boxes.data, r.gt_boxes.data[keep])
        assert (s.gt_num_points >= 1).all()
    assert dropped > 0  # the generator makes unseen boxes; the filter removed them
