"""Distillation maps: features, heatmaps and masks appear at the right place and brightness."""
import numpy as np
import pytest
import torch

from kd3d.structures import BEVGrid
from kd3d.vis.distill import (BAR_PX, GAP_PX, TITLE_PX, feature_to_rgb, heatmap_to_rgb, orient_bev,
                              render_distill_maps, tile_origin)

GRID = BEVGrid(-10.0, -10.0, 10.0, 10.0, 0.5, 0.5)  # 40 x 40 cells


def test_feature_mean_and_pca():
    f = np.zeros((4, 40, 40))
    f[:, 5:10, 20:30] = 2.0
    rgb = feature_to_rgb(f, "mean")
    assert rgb[7, 25].astype(int).sum() > rgb[30, 5].astype(int).sum() + 200
    # PCA: two feature clusters get clearly different colours; same basis -> same colours
    g = np.random.default_rng(0).normal(size=(8, 40, 40)) * 0.01
    g[0, :20] += 1.0
    g[1, 20:] += 1.0
    rgb, basis = feature_to_rgb(g, "pca", return_basis=True)
    assert np.abs(rgb[5, 5].astype(int) - rgb[35, 5].astype(int)).max() > 150
    np.testing.assert_array_equal(feature_to_rgb(g, "pca", basis=basis), rgb)
    with pytest.raises(ValueError, match="mode"):
        feature_to_rgb(g, "tsne")


def test_heatmap_peak_and_orientation():
    hm = torch.full((1, 3, 40, 40), -8.0)
    hm[0, 2, 30, 10] = 8.0  # row 30 (y = 5.25), col 10 (x = -4.75)
    rgb = heatmap_to_rgb(hm, logits=True)
    assert np.unravel_index(rgb.astype(int).sum(-1).argmax(), (40, 40)) == (30, 10)
    disp = orient_bev(rgb)
    # BEV orientation: +x up, +y left -> x = -4.75 is in the lower half, y = 5.25 in the left half
    r, c = np.unravel_index(disp.astype(int).sum(-1).argmax(), (40, 40))
    assert (r, c) == (40 - 1 - 10, 40 - 1 - 30)


def test_render_distill_maps_tiles_and_overlays():
    rng = np.random.default_rng(1)
    t = rng.normal(size=(1, 6, 40, 40)) * 0.1
    s = t + rng.normal(size=t.shape) * 0.05
    hm = np.full((1, 2, 40, 40), -8.0)
    hm[0, 0, 30, 10] = 8.0
    mask = np.zeros((40, 40))
    mask[25:35, 5:15] = 0.8
    tile = 160
    img = render_distill_maps(torch.as_tensor(t), s, {"weights": mask, "fg": mask > 0},
                              keypoints=np.array([[-4.75, 5.25]]), points=np.array([[5.0, -5.0], [6.0, -5.0]]),
                              point_groups=np.array([0, 1]), teacher_heatmap=hm, grid=GRID, tile=tile, ncols=4)
    # tiles: teacher, student, |T-S|, teacher heatmap | weights, fg, overlay; title above, colour bar below
    assert img.shape == (2 * (tile + TITLE_PX + BAR_PX), 4 * tile + 3 * GAP_PX, 3)
    scale = tile / 40

    def tile_px(index, x, y):
        y0, x0 = tile_origin(index, tile, 4)
        col, row = GRID.xy_to_cell(np.array([[x, y]]))[0]
        u, v = (40 - row) * scale, (40 - col) * scale
        return int(y0 + v), int(x0 + u)

    # the heatmap's colour bar: inferno from dark (left) to bright (right) just under the tile
    y0, x0 = tile_origin(3, tile, 4)
    left, right = img[y0 + tile + 6, x0 + 5].astype(int), img[y0 + tile + 6, x0 + tile - 6].astype(int)
    assert left.sum() < 100 and right.sum() > 400
    # the title strip above a tile holds light text on the dark background
    assert img[y0 - TITLE_PX + 2:y0 - 2, x0:x0 + tile].max() > 200

    v, u = tile_px(3, -4.75, 5.25)  # heatmap peak is bright
    assert img[v, u].astype(int).sum() > 500
    v2, u2 = tile_px(3, 5.0, -5.0)
    assert img[v2, u2].astype(int).sum() < 60
    v, u = tile_px(5, -5.0, 5.0)  # inside the bool mask: white; outside: black
    assert tuple(img[v, u]) == (255, 255, 255)
    v, u = tile_px(5, 5.0, -5.0)
    assert tuple(img[v, u]) == (0, 0, 0)
    v, u = tile_px(6, -4.75, 5.25)  # keypoint cross drawn in white on the dimmed teacher
    patch = img[v - 3:v + 4, u - 3:u + 4].reshape(-1, 3)
    assert (patch == 255).all(axis=1).any()
    v, u = tile_px(6, 5.0, -5.0)  # the two points in distinct group colours
    v1, u1 = tile_px(6, 6.0, -5.0)
    assert np.abs(img[v, u].astype(int) - img[v1, u1].astype(int)).max() > 50


def test_render_distill_maps_bad_mask():
    f = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="mask 'm'"):
        render_distill_maps(f, f, {"m": np.zeros((2, 2, 8, 8))})
    with pytest.raises(ValueError, match="student_feat"):
        render_distill_maps(f, np.zeros(5))


def test_mask_log_scale_for_wide_ranges():
    from kd3d.vis.distill import mask_to_rgb

    m = np.full((4, 4), 1e-20)
    m[0, 0], m[1, 1] = 1e4, 1e-8
    rgb, text = mask_to_rgb(m)
    assert text.startswith("log")
    # on a log scale the middle value (1e-8) is clearly brighter than the floor; linear would not separate them
    assert rgb[1, 1].astype(int).sum() > rgb[2, 2].astype(int).sum() + 100
    rgb, text = mask_to_rgb(np.linspace(0, 1, 16).reshape(4, 4))
    assert text == "[0, 1]"
