"""Camera geometry on kd3d's generated nuScenes-format data (real loader, real calibrations):
the frustum point of each LiDAR-supervised patch at its target depth bin lies next to a LiDAR point."""
import numpy as np
import pytest
import torch

from kd3d.models.camera.view_transformer import DepthBins, depth_targets, frustum_to_lidar, make_frustum

IMAGE, STRIDE = (64, 128), 16
BINS = DepthBins(1.0, 61.0, 2.0)


@pytest.fixture(scope="module")
def synth_batch(tmp_path_factory):
    from kd3d.data.nuscenes import NuScenesDataset
    from kd3d.data.synth import generate_nuscenes
    from kd3d.data.transforms import ImageResizeCrop
    from kd3d.structures.sample import collate

    s = generate_nuscenes(tmp_path_factory.mktemp("cam_synth"), scenes=1, samples_per_scene=1, seed=0,
                          image_size=(192, 108), sweeps=0, progress=False)
    ds = NuScenesDataset(s["dataroot"], s["version"], "mini_train", sweeps=1, load_images=True,
                         transforms=ImageResizeCrop(IMAGE))
    return collate([ds[0]])


def _roundtrip_errors(batch, img_aug):
    """Distance from each supervised patch's frustum point (target bin centre) to the nearest LiDAR point."""
    target = depth_targets(batch.points, batch.cam_intrinsics, batch.cam2lidar, batch.img_aug, IMAGE, STRIDE, BINS)
    geom = frustum_to_lidar(make_frustum(IMAGE, STRIDE, BINS), batch.cam_intrinsics, batch.cam2lidar, img_aug)
    n, i, j = torch.nonzero(target >= 0, as_tuple=True)
    pts = geom[n, target[n, i, j], i, j]  # (K, 3)
    lidar = batch.points[0][:, :3]
    return target, torch.cdist(pts, lidar).min(1).values.numpy()


def test_depth_targets_and_frustum_agree_on_generated_data(synth_batch):
    assert synth_batch.images.shape == (1, 6, 3, *IMAGE)
    assert not torch.allclose(synth_batch.img_aug[0, 0], torch.eye(3))  # a real resize + crop
    target, err = _roundtrip_errors(synth_batch, synth_batch.img_aug)
    assert (target >= 0).float().mean() > 0.3
    # bins are 2 m deep and patches 16 px wide: the bin centre is within about a metre
    assert np.median(err) < 1.0, np.median(err)
    # ignoring the image augmentation in the geometry breaks the agreement
    _, err_wrong = _roundtrip_errors(synth_batch, torch.eye(3).expand_as(synth_batch.img_aug))
    assert np.median(err_wrong) > 2 * np.median(err)
