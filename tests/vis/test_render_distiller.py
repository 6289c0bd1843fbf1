"""render_distiller on a real kd3d Distiller (tiny BEV teacher and student, the methods' own terms)."""
import numpy as np
import pytest
import torch
from torch import nn

from kd3d.distill.distiller import Distiller
from kd3d.distill.methods import build_terms
from kd3d.models.base import BaseModel, ModelOutput
from kd3d.structures import BEVGrid
from kd3d.structures.sample import collate
from kd3d.vis.distill import BAR_PX, GAP_PX, TITLE_PX
from kd3d.vis.distill_masks import distiller_maps, render_distiller

GRID = BEVGrid(-25.6, -25.6, 25.6, 25.6, 0.8, 0.8)  # 64 x 64


class TinyBEV(BaseModel):
    """Points -> (log count, mean z) occupancy -> conv 'bev' -> conv 'bev_neck' -> 'heatmap', 'reg'."""

    def __init__(self, width: int):
        super().__init__()
        self.bev_grid = GRID
        self.stem = nn.Conv2d(2, width, 3, padding=1)
        self.neck = nn.Conv2d(width, width, 3, padding=1)
        self.hm = nn.Conv2d(width, 2, 1)
        self.reg = nn.Conv2d(width, 10, 1)

    def forward(self, batch):
        maps = []
        for p in batch.points:
            cr = torch.floor((p[:, :2] - torch.tensor([GRID.xmin, GRID.ymin])) / GRID.dx).long()
            ok = ((cr >= 0) & (cr < 64)).all(1)
            key = cr[ok, 1] * 64 + cr[ok, 0]
            n = torch.bincount(key, minlength=64 * 64).float()
            z = torch.bincount(key, weights=p[ok, 2].double(), minlength=64 * 64).float()
            maps.append(torch.stack([torch.log1p(n), z / n.clamp(min=1)]).view(2, 64, 64))
        bev = torch.relu(self.stem(torch.stack(maps)))
        neck = torch.relu(self.neck(bev))
        return ModelOutput(feats={"bev": bev, "bev_neck": neck, "heatmap": self.hm(neck), "reg": self.reg(neck)})


@pytest.fixture
def distiller():
    torch.manual_seed(0)
    student, teacher = TinyBEV(4), TinyBEV(8)
    terms, adapters = [], {}
    for t, a in (build_terms("bevdistill", student_channels=4, teacher_channels=8, instance_weight=0,
                             prediction_weight=0, feature_key="bev_neck"),
                 build_terms("distillbev", levels={"bev_neck": (4, 8)}, a_sp=0),
                 build_terms("unidistill", teacher_modality="lidar", student_modality="camera", student_channels=4,
                             teacher_channels=8, response=False)):
        terms += t
        adapters.update(a)
    return Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters)


def test_distiller_maps_content(distiller, sample):
    batch = collate([sample])
    distiller.train()
    kw = distiller_maps(distiller, batch)
    assert distiller.training  # mode restored
    assert kw["term"] == "bevdistill/dense"
    assert tuple(kw["teacher_feat"].shape) == (8, 64, 64) and tuple(kw["student_feat"].shape) == (8, 64, 64)  # adapted
    g = kw["masks"]["bevdistill/dense weight"]
    for x, y in sample.gt_boxes.center[:, :2]:
        col, row = np.floor(GRID.xy_to_cell(np.array([[x, y]]))[0]).astype(int)
        assert g[row, col] == 1.0
    reg = kw["masks"]["distillbev/regions (0 bg, 1 fg, 2 fp)"]
    col, row = np.floor(GRID.xy_to_cell(sample.gt_boxes.center[:1, :2])[0]).astype(int)
    assert reg[row, col] >= 1 and "distillbev/attention" in kw["masks"]
    titles = [o[0] for o in kw["overlays"]]
    assert titles == ["bevdistill: GT instance centres", "unidistill: 9 keypoints per box"]
    assert kw["overlays"][1][1].shape == (18, 2)
    assert tuple(kw["teacher_heatmap"].shape) == (2, 64, 64)
    with pytest.raises(ValueError, match="no dense BEV term named 'nope'"):
        distiller_maps(distiller, batch, term="nope")


def test_render_distiller_image(distiller, sample):
    img = render_distiller(distiller, collate([sample]), term="distillbev/feat_bev_neck", tile=128)
    # tiles: teacher, student, |T-S|, 2 heatmaps, 6 maps (bevdistill weight, distillbev regions / fg scale /
    # attention, unidistill keypoint reads / response weight), 2 overlays (GT centres, keypoints) -> 13 tiles
    assert img.shape == (4 * (128 + TITLE_PX + BAR_PX), 4 * 128 + 3 * GAP_PX, 3)
    assert img.std() > 5
