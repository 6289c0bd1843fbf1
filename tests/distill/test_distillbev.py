"""DistillBEV: region masks on a two-box scene, attention, size-adaptive weights, spatial term."""
import math
from types import SimpleNamespace

import pytest
import torch
from helpers import box, ctx_for, train_steps
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller, inherit_head
from kd3d.distill.methods.distillbev import (DistillBEVFeatureLoss, DistillBEVSpatialLoss, channel_attention,
                                             distillbev_regions, distillbev_terms, spatial_attention)
from kd3d.models.heads.center_head import CenterHead
from kd3d.structures import BEVGrid

GRID = BEVGrid(0, 0, 8, 8, 1, 1)
BOXES = [box(2.0, 2.0, 2.0, 2.0), box(6.0, 6.0, 2.0, 2.0)]


def _teacher_score():
    """max_c sigmoid(heatmap) with three high cells: inside box A, next to A's centre (GT heat
    e^-2 >= 0.1 -> not FP) and two far away (FP)."""
    score = torch.zeros(8, 8)
    score[2, 2] = 0.9  # inside box A
    score[2, 3] = 0.5  # outside A, but GT Gaussian = e^-2 = 0.135 -> not FP
    score[2, 4] = 0.5  # two cells away from A's centre cell: FP
    score[6, 1] = 0.9  # far from everything: FP
    score[0, 7] = 0.05  # below threshold: background
    return score


def test_regions_two_box_scene():
    r = distillbev_regions(torch.tensor(BOXES), GRID, _teacher_score())
    assert r["fg"].sum() == 8 and r["fg"][1:3, 1:3].all() and r["fg"][5:7, 5:7].all()
    assert r["fp"].sum() == 2 and r["fp"][2, 4] and r["fp"][6, 1] and not r["fp"][2, 3]
    assert r["bg"].sum() == 64 - 8 - 2 and r["n_bg"] == 54 and r["n_fp"] == 2
    assert not (r["fg"] & r["bg"]).any() and not (r["fp"] & r["fg"]).any()
    # size-adaptive: max(sqrt(A_cell / A_box), 1/N_bg) = max(sqrt(1/4), 1/54)
    assert r["fg_scale"][1, 1].item() == pytest.approx(0.5) and r["fg_scale"][0, 0].item() == 0.0
    huge = distillbev_regions(torch.tensor([box(4.0, 4.0, 8.0, 8.0)]), GRID, None)
    assert huge["n_bg"] == 1  # everything is foreground: N_bg clamps to 1
    assert huge["fg_scale"][0, 0].item() == pytest.approx(1.0)  # max(sqrt(1/64), 1/1)


def test_spatial_attention_golden():
    f = torch.tensor([0.0, 0.5 * math.log(3.0)]).view(1, 1, 1, 2)
    assert spatial_attention(f, 0.5).flatten().tolist() == pytest.approx([0.5, 1.5], rel=1e-6)
    g = torch.ones(1, 3, 2, 2, requires_grad=True)
    assert not spatial_attention(g).requires_grad


def test_feature_loss_golden_uniform_attention():
    heat_logit = torch.logit(_teacher_score().clamp(1e-6, 1 - 1e-6))[None, None]
    ctx = ctx_for([BOXES], GRID, teacher_feats={"heatmap": heat_logit})
    a_fg, a_bg, a_fp = 6e-3, 4e-2, 6e-2
    loss = DistillBEVFeatureLoss(a_fg=a_fg, a_bg=a_bg, a_fp=a_fp)
    s, t = torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)  # uniform |F| -> A = 1; (s - t)^2 = 1 per channel
    expected = 3 * (a_fg * 0.5 * 8 + a_bg / 54 * 54 + a_fp / 2 * 2)
    assert loss(s, t, ctx).item() == pytest.approx(expected, rel=1e-5)
    no_fp = DistillBEVFeatureLoss(a_fg=a_fg, a_bg=a_bg, a_fp=0.0)
    assert no_fp(s, t, ctx).item() == pytest.approx(3 * (a_fg * 4 + a_bg), rel=1e-5)  # FP cells fold into BG
    # a difference only at one FG cell with non-uniform attention
    s2 = torch.ones(1, 1, 8, 8)
    s2[0, 0, 1, 1] = 2.0
    t2 = torch.ones(1, 1, 8, 8)
    p_s = 64 * math.exp(2 / 0.5) / (63 * math.exp(1 / 0.5) + math.exp(2 / 0.5))
    attn = (1.0 + p_s) / 2
    assert loss(s2, t2, ctx).item() == pytest.approx(attn * a_fg * 0.5, rel=1e-5)


def test_fp_region_keeps_gt_heatmap_radius_two():
    """A 1 x 1 m box (radius floor(r) < 2): the diagonal neighbour of its centre cell has GT heat
    e^-4 = 0.018 with radius 1 (old: FP) but e^-(2 / (2 (5/6)^2)) = e^-1.44 = 0.237 with radius 2."""
    boxes = torch.tensor([box(2.5, 2.5, 1.0, 1.0)])
    score = torch.zeros(8, 8)
    score[3, 3] = 0.5  # diagonal neighbour of the centre cell (2, 2), outside the box
    score[2, 5] = 0.5  # three cells away: FP either way
    new = distillbev_regions(boxes, GRID, score)
    old = distillbev_regions(boxes, GRID, score, gt_min_radius=1)
    assert old["fp"][3, 3] and old["n_fp"] == 2
    assert not new["fp"][3, 3] and new["fp"][2, 5] and new["n_fp"] == 1 and new["bg"][3, 3]


def test_map_hook_uses_the_terms_gt_min_radius():
    """The visualisation hook draws the FP region the term computes: with gt_min_radius=1 the
    diagonal neighbour of the 1 x 1 m box's centre is FP (region 2), with the default 2 it is not."""
    from kd3d.distill.distiller import DistillTerm
    from kd3d.distill.methods import METHODS, MapContext
    from kd3d.models.base import ModelOutput

    boxes = torch.tensor([box(2.5, 2.5, 1.0, 1.0)])
    score = torch.zeros(8, 8)
    score[3, 3] = 0.5
    heat = torch.logit(score.clamp(1e-6, 1 - 1e-6))[None, None]
    for radius, fp in ((1, True), (2, False)):
        term = DistillTerm("distillbev/feat_bev", "bev", "bev", DistillBEVFeatureLoss(gt_min_radius=radius))
        ctx = MapContext(batch=SimpleNamespace(gt_boxes=[boxes]), batch_index=0, grid=GRID,
                         teacher_out=ModelOutput(feats={"heatmap": heat}), terms=(term,))
        regions = METHODS["distillbev"].maps(ctx).maps["distillbev/regions (0 bg, 1 fg, 2 fp)"]
        assert (int(regions[3, 3]) == 2) is fp


def test_fp_term_teacher_channel_attention():
    """Teacher channels (1, 0, 0) everywhere; the student equals it except at one FP cell, where it
    is (0, 1, 0): |F| averages 1/3 over channels everywhere on both maps, so A = 1. Squared
    differences there: (1, 1, 0). Channel attention 3 softmax((1, 0, 0) / 0.5) = 3 (e^2, 1, 1) /
    (e^2 + 2) -> FP part a_fp / N_fp * 3 (e^2 + 1) / (e^2 + 2) against a_fp / N_fp * 2 without it."""
    heat_logit = torch.logit(_teacher_score().clamp(1e-6, 1 - 1e-6))[None, None]
    ctx = ctx_for([BOXES], GRID, teacher_feats={"heatmap": heat_logit})
    t = torch.zeros(1, 3, 8, 8)
    t[:, 0] = 1.0
    s = t.clone()
    s[0, :, 6, 1] = torch.tensor([0.0, 1.0, 0.0])  # FP cell (N_fp = 2)
    e2 = math.exp(2.0)
    assert channel_attention(t).flatten().tolist() == pytest.approx([3 * e2 / (e2 + 2), 3 / (e2 + 2), 3 / (e2 + 2)])
    a_fp = 6e-2
    with_ca = DistillBEVFeatureLoss(a_fp=a_fp)(s, t, ctx).item()
    without = DistillBEVFeatureLoss(a_fp=a_fp, channel_attention=False)(s, t, ctx).item()
    assert with_ca == pytest.approx(a_fp / 2 * 3 * (e2 + 1) / (e2 + 2), rel=1e-5)  # 0.0853
    assert without == pytest.approx(a_fp / 2 * 2, rel=1e-5)  # 0.06
    # FG/BG cells are not channel-weighted: the same difference at a BG cell adds a_bg / N_bg * 2
    s[0, :, 0, 6] = torch.tensor([0.0, 1.0, 0.0])
    assert DistillBEVFeatureLoss(a_fp=a_fp)(s, t, ctx).item() == pytest.approx(with_ca + 4e-2 / 54 * 2, rel=1e-5)
    terms, _ = distillbev_terms(levels={"bev_neck": (3, 3)}, channel_attention=False)
    assert terms[0].loss.channel_attention is False


class _Det(torch.nn.Module):
    """A model with a real CenterHead under ``head`` (only the state dict matters here)."""

    def __init__(self, in_channels, share_channels, tasks=(("car",), ("pedestrian", "bicycle"))):
        super().__init__()
        self.head = CenterHead(in_channels=in_channels, tasks=tasks, grid=GRID, share_channels=share_channels,
                               head_channels=8)


def test_inherit_task_heads_only():
    torch.manual_seed(0)
    teacher, student = _Det(32, 16), _Det(8, 16)  # input widths differ, shared-conv widths match
    names = inherit_head(student, teacher, mode="task_heads")
    # 2 tasks x 6 branches (heatmap + 5 box groups) x 8 tensors (conv, 5 BN entries, final w + b)
    assert len(names) == 2 * 6 * 8 and all(n.startswith("head.task_heads.") for n in names)
    t_state, s_state = teacher.state_dict(), student.state_dict()
    assert all(torch.equal(s_state[n], t_state[n]) for n in names)
    assert s_state["head.shared.0.weight"].shape == (16, 8, 3, 3)  # the shared conv is not touched
    with pytest.raises(ValueError, match="per-task heads differ.*head.task_heads.0.heatmap.0.0.weight"):
        inherit_head(_Det(8, 8), teacher, mode="task_heads")  # shared-conv width 8 vs 16
    with pytest.raises(ValueError, match="per-task heads differ"):
        inherit_head(_Det(32, 16, tasks=(("car",),)), teacher, mode="task_heads")  # a task missing
    with pytest.raises(ValueError, match="mode"):
        inherit_head(student, teacher, mode="heads")
    # mode "all" copies every equal-shape head tensor, the shared conv's BN included
    assert len(inherit_head(_Det(8, 16), teacher)) == 2 * 6 * 8 + 5


def test_spatial_term_golden():
    ctx = ctx_for([BOXES], GRID)
    sp = DistillBEVSpatialLoss()
    torch.nn.init.zeros_(sp.conv.weight), torch.nn.init.zeros_(sp.conv.bias)
    t = torch.full((2, 4, 8, 8), 2.0)
    assert sp(torch.zeros(2, 4, 8, 8), t, ctx).item() == pytest.approx(2.0 * 64)  # sum over cells / B


def test_distillbev_multilevel_end_to_end_and_head_inheritance():
    torch.manual_seed(0)
    grid = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)
    teacher, student = TinyBEVDetector(grid=grid, width=8), TinyBEVDetector(grid=grid, width=4)
    terms, adapters = distillbev_terms(levels={"bev_stage1": (4, 8), "bev_stage2": (8, 16), "bev_neck": (8, 16)})
    assert len(terms) == 6
    with pytest.raises(ValueError, match="levels"):
        distillbev_terms(levels=[])
    with pytest.raises(ValueError, match="student_channels is required"):
        distillbev_terms()  # default levels need the models' feature specs
    d = Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters)
    hist = train_steps(d, [make_batch(i) for i in range(2)])
    assert all(math.isfinite(v) and v >= 0 for h in hist for v in h.values())
    assert hist[0]["distill/distillbev/feat_bev_neck"] > 0
    t4, s4 = TinyBEVDetector(grid=grid, width=4), TinyBEVDetector(grid=grid, width=4)
    assert len(inherit_head(s4, t4)) == 4
