"""LiDAR detectors and the segmenter on a real batch: a tiny dataset written by kd3d.data.synth in
the nuScenes format, read back by kd3d.data.nuscenes."""
import numpy as np
import pytest
import torch

from kd3d.models.heads.targets import build_task_targets
from kd3d.structures.sample import collate


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def real_batch(tmp_path_factory):
    from kd3d.data.nuscenes import NuScenesDataset
    from kd3d.data.synth import generate_nuscenes

    s = generate_nuscenes(tmp_path_factory.mktemp("nusc_models"), scenes=1, samples_per_scene=1, seed=1,
                          image_size=(16, 16), sweeps=1, progress=False)
    ds = NuScenesDataset(s["dataroot"], s["version"], "all", sweeps=2, load_images=False)
    return collate([ds[0]])


@pytest.mark.parametrize("factory", ["centerpoint_voxel", "centerpoint_pillar"])
def test_detector_on_generated_batch(factory, real_batch):
    from kd3d.models.lidar import presets

    torch.manual_seed(0)
    model = getattr(presets, factory)(scale="synthetic", width=0.25)
    out = model(real_batch)
    losses = model.loss(out, real_batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert out.feats["heatmap"].shape == (1, 10, 64, 64)
    model.eval()
    with torch.no_grad():
        res = model.predict(model(real_batch), real_batch)
    assert len(res) == 1 and np.isfinite(res[0]["boxes"].data[:, :7]).all()


def test_generated_boxes_have_heatmap_peaks(real_batch):
    from kd3d.models.lidar import head_grid

    grid = head_grid("synthetic")
    boxes, labels = real_batch.gt_boxes[0], real_batch.gt_labels[0]
    assert boxes.shape[0] > 0
    tg = build_task_targets([boxes], [labels], list(range(10)), grid)
    inside = (boxes[:, :2].abs() < 51.2).all(1)
    assert int(tg["mask"].sum()) == int(inside.sum())
    # every in-range box puts a peak of exactly 1 at its cell in its class channel
    cells = ((boxes[inside, :2] + 51.2) / 1.6).floor().long()
    peaks = tg["heatmap"][0, labels[inside], cells[:, 1], cells[:, 0]]
    assert torch.all(peaks == 1.0)


def test_segmenter_on_generated_batch(real_batch):
    from kd3d.models.seg import sparse_unet_seg

    assert real_batch.points_label[0] is not None
    torch.manual_seed(0)
    model = sparse_unet_seg(scale="synthetic", width=0.25)
    out = model(real_batch)
    losses = model.loss(out, real_batch)
    assert torch.isfinite(sum(losses.values())) and losses["point_ce"].item() > 0
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        res = model.predict(model(real_batch), real_batch)
    assert res[0]["point_labels"].shape == real_batch.points_label[0].shape
