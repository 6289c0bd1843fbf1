"""Scene and camera pictures carry a legend: the classes drawn and GT (solid) vs prediction (dashed)."""
import numpy as np
import pytest

from kd3d.structures import Boxes3D
from kd3d.structures.classes import KITTI_CLASSES, NUSC_DET_CLASSES
from kd3d.vis.bev import render_bev, render_scene
from kd3d.vis.camera import render_cameras
from kd3d.vis.colors import CLASS_COLORS, GT_COLOR, PRED_COLOR
from kd3d.vis.legend import LegendEntry, box_legend, draw_legend

CAR, TRUCK, PED = (tuple(int(v) for v in CLASS_COLORS[i]) for i in (0, 1, 5))


def test_box_legend_entries():
    e = box_legend([0, 5, 0], [1, 0], class_names=NUSC_DET_CLASSES)
    assert e == [LegendEntry("car", CAR, "swatch"), LegendEntry("truck", TRUCK, "swatch"),
                 LegendEntry("pedestrian", PED, "swatch"), LegendEntry("ground truth", (230, 230, 230), "solid"),
                 LegendEntry("prediction", (230, 230, 230), "dashed")]
    # KITTI names take the palette colour of the same nuScenes class; no class names: "class k"
    assert box_legend([1], None, class_names=KITTI_CLASSES)[0] == LegendEntry("Pedestrian", PED, "swatch")
    assert [x.text for x in box_legend([3], [])] == ["class 3", "ground truth"]
    assert box_legend([0], [2], box_colors="source") == [LegendEntry("ground truth", GT_COLOR, "solid"),
                                                         LegendEntry("prediction", PRED_COLOR, "dashed")]
    assert box_legend(None, None) == []
    with pytest.raises(ValueError, match="box_colors"):
        box_legend([0], [], box_colors="rainbow")


def _count(img, color, region=np.s_[:, :]):
    return int((np.abs(img[region].astype(int) - color).max(-1) == 0).sum())


def test_bev_legend_lists_drawn_classes_only():
    # a car GT far away from the legend corner, a pedestrian prediction below the score threshold
    gt = Boxes3D(np.array([[-20.0, -20.0, 0, 4, 2, 1.5, 0]]))
    preds = {"boxes": Boxes3D(np.array([[-20.0, 20.0, 0, 1, 1, 1.8, 0]])), "scores": np.array([0.1]),
             "labels": np.array([5])}
    kw = dict(gt_boxes=gt, gt_labels=np.array([0]), preds=preds, xy_range=(-30, -30, 30, 30), resolution=0.2,
              rings=None, class_names=NUSC_DET_CLASSES, score_thresh=0.3)
    img = render_bev(None, **kw)
    plain = render_bev(None, legend=False, **kw)
    corner = np.s_[:40, :120]
    assert _count(img, CAR, corner) > 50 and _count(plain, CAR, corner) == 0  # the car swatch
    assert _count(img, PED) == 0  # the filtered prediction's class is not listed
    assert not np.array_equal(img[corner], plain[corner]) and np.array_equal(img[100:], plain[100:])


def test_scene_and_camera_legends(sample, preds):
    both = render_scene(sample, preds, view="both", xy_range=(-20, -20, 20, 20), resolution=0.2,
                        class_names=NUSC_DET_CLASSES)
    w_bev = 200
    assert _count(both[:60, :w_bev], TRUCK) > 20  # predicted truck: listed in the BEV half's legend
    grid = render_cameras(sample, preds, class_names=NUSC_DET_CLASSES, tile_width=240)
    plain = render_cameras(sample, preds, class_names=NUSC_DET_CLASSES, tile_width=240, legend=False)
    right = np.s_[:70, -120:]
    assert _count(grid, TRUCK, right) > 20 and _count(plain, TRUCK, right) == 0
    assert _count(grid, PED, right) > 20  # the GT pedestrian


def test_draw_legend_errors_and_noop():
    img = np.zeros((50, 50, 3), np.uint8)
    assert draw_legend(img, []) is img
    with pytest.raises(ValueError, match="corner"):
        draw_legend(img, [LegendEntry("a", (1, 2, 3), "solid")], corner="middle")
    with pytest.raises(ValueError, match="style"):
        draw_legend(img, [LegendEntry("a", (1, 2, 3), "dotted")])
