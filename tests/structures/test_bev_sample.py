import numpy as np
import pytest
import torch

from kd3d.structures import BEVGrid, Boxes3D
from kd3d.structures.sample import Sample, collate


def test_bev_grid_shape_and_cells():
    g = BEVGrid.from_range([-51.2, -51.2, -5, 51.2, 51.2, 3], 0.8)
    assert g.shape == (128, 128)
    assert g.scaled(2).shape == (64, 64)
    cell = g.xy_to_cell(np.array([[-51.2, -51.2], [0.0, 0.4]]))
    assert np.allclose(cell, [[0, 0], [64, 64.5]])
    assert np.allclose(g.cell_to_xy(cell), [[-51.2, -51.2], [0.0, 0.4]])
    centers = g.cell_centers()
    assert centers.shape == (128, 128, 2)
    assert np.allclose(centers[0, 1], [-51.2 + 1.2, -51.2 + 0.4])  # row = y, col = x


def test_bev_grid_errors():
    with pytest.raises(ValueError, match="not a multiple"):
        BEVGrid(0, 0, 10, 10, 0.3, 0.3)
    with pytest.raises(ValueError, match="empty range"):
        BEVGrid(0, 0, 0, 10, 1, 1)


def make_sample(n=100, m=3, cams=2, token="t0"):
    rng = np.random.default_rng(0)
    return Sample(
        token=token,
        points=rng.normal(size=(n, 5)).astype(np.float32),
        num_key_points=n // 2,
        gt_boxes=Boxes3D(rng.normal(size=(m, 9))),
        gt_labels=np.arange(m, dtype=np.int64),
        gt_attrs=-np.ones(m, np.int64),
        gt_num_points=np.ones(m, np.int64),
        points_label=np.zeros(n // 2, np.int64),
        images=np.zeros((cams, 8, 16, 3), np.uint8),
        cam_names=[f"CAM_{i}" for i in range(cams)],
        cam_intrinsics=np.tile(np.eye(3), (cams, 1, 1)),
        cam2lidar=np.tile(np.eye(4), (cams, 1, 1)),
        img_aug=np.tile(np.eye(3), (cams, 1, 1)),
    )


def test_sample_validate_names_field():
    s = make_sample().validate()
    s.gt_labels = np.zeros(2, np.int64)
    with pytest.raises(ValueError, match="gt_labels"):
        s.validate()
    s = make_sample()
    s.points = s.points.astype(np.float64)
    with pytest.raises(ValueError, match="points must be"):
        s.validate()


def test_collate_shapes():
    batch = collate([make_sample(token="a"), make_sample(n=50, m=1, token="b")])
    assert len(batch) == 2
    assert batch.images.shape == (2, 2, 3, 8, 16) and batch.images.dtype == torch.float32
    assert batch.gt_boxes[1].shape == (1, 9)
    assert batch.points[1].shape == (50, 5)
    assert batch.bev_aug.shape == (2, 4, 4)
    assert batch.to("cpu").samples[0].token == "a"
