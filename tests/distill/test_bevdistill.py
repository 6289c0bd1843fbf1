"""BEVDistill terms on hand-made maps, and end to end on tiny models."""
import math

import pytest
import torch
from helpers import box, ctx_for, train_steps
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller
from kd3d.distill.methods.bevdistill import (ForegroundGaussianMSE, InstanceContrastiveLoss, PredictionL1Loss,
                                             bevdistill_terms, teacher_peaks)
from kd3d.models.heads.center_head import CenterHead
from kd3d.models.specs import FeatureSpec
from kd3d.structures import BEVGrid

GRID = BEVGrid(0, 0, 5, 5, 1, 1)


def test_dense_term_gaussian_weighted_mse():
    ctx = ctx_for([[box(2.5, 1.5, 0.5, 0.5)]], GRID)  # radius clamps to 1 at cell (row 1, col 2)
    t = torch.zeros(1, 2, 5, 5)
    t[0, 0, 1, 2] = 1.0  # differs only at the centre cell, by 1 in channel 0
    t[0, 1, 1, 3] = 2.0  # and by 2 in channel 1 at a neighbour (weight e^-2)
    loss = ForegroundGaussianMSE(min_overlap=0.1)(torch.zeros(1, 2, 5, 5), t, ctx)
    wsum = 1 + 4 * math.exp(-2) + 4 * math.exp(-4)
    assert loss.item() == pytest.approx((1.0 + 4.0 * math.exp(-2)) / wsum, rel=1e-5)
    # a difference far from every box costs nothing
    far = torch.zeros(1, 2, 5, 5)
    far[0, :, 4, 0] = 5.0
    assert ForegroundGaussianMSE()(torch.zeros(1, 2, 5, 5), far, ctx).item() == 0.0


def test_dense_term_resamples_a_coarser_student():
    coarse = BEVGrid(0, 0, 6, 6, 2, 2)
    fine = BEVGrid(0, 0, 6, 6, 1, 1)
    ctx = ctx_for([[box(3.0, 3.0, 2.0, 2.0)]], coarse, teacher_grid=fine)
    s = torch.ones(1, 1, 3, 3)
    t = torch.ones(1, 1, 6, 6)
    # inner cells read 1 exactly; border cells are half outside (zero padding) -> loss > 0 only there
    assert ForegroundGaussianMSE()(s, t, ctx).item() == pytest.approx(0.0, abs=1e-6)


def test_instance_contrastive_infonce_golden():
    grid = BEVGrid(0, 0, 4, 4, 1, 1)
    ctx = ctx_for([[box(0.5, 0.5, 1, 1), box(2.5, 3.5, 1, 1)]], grid)  # centres on cell centres
    s = torch.zeros(1, 2, 4, 4)
    s[0, 0, 0, 0], s[0, 1, 3, 2] = 3.0, 0.5
    t = torch.zeros(1, 2, 4, 4)
    t[0, 0, 0, 0], t[0, 1, 3, 2] = 1.0, 7.0
    loss = InstanceContrastiveLoss(student_channels=2, teacher_channels=2, temperature=0.5)
    loss.student_proj, loss.teacher_proj = torch.nn.Identity(), torch.nn.Identity()
    # normalised features are one-hot: logits = I / 0.5 -> CE = log(1 + e^{-2}) (either anchor)
    assert loss(s, t, ctx).item() == pytest.approx(math.log1p(math.exp(-2.0)), rel=1e-5)
    t_swapped = t.flip(1)  # positives now orthogonal, negatives aligned
    assert loss(s, t_swapped, ctx).item() == pytest.approx(math.log1p(math.exp(2.0)), rel=1e-5)
    assert loss(s, t, ctx_for([[]], grid)).item() == 0.0


def test_instance_locations_from_student_peaks():
    grid = BEVGrid(0, 0, 4, 4, 1, 1)
    heat = torch.full((1, 1, 4, 4), -9.0)
    heat[0, 0, 3, 2] = 3.0  # one predicted centre at cell (row 3, col 2) -> xy (2.5, 3.5)
    ctx = ctx_for([[box(0.5, 0.5, 1, 1)]], grid)
    ctx.student_out.feats["heatmap"] = heat
    s = torch.zeros(1, 2, 4, 4)
    s[0, 0, 0, 0], s[0, 1, 3, 2] = 1.0, 1.0
    t = s.clone()
    for where, n in (("gt", 1), ("pred", 1), ("both", 2)):
        loss = InstanceContrastiveLoss(student_channels=2, teacher_channels=2, temperature=0.5, locations=where)
        loss.student_proj, loss.teacher_proj = torch.nn.Identity(), torch.nn.Identity()
        expected = 0.0 if n == 1 else math.log1p(math.exp(-2.0))
        assert loss(s, t, ctx).item() == pytest.approx(expected, abs=1e-6), where
    with pytest.raises(ValueError, match="locations"):
        InstanceContrastiveLoss(student_channels=1, teacher_channels=1, locations="queries")


def test_prediction_term_weighted_by_teacher_score():
    grid = BEVGrid(0, 0, 6, 6, 1, 1)
    ctx = ctx_for([[]], grid)
    heat = torch.full((1, 2, 6, 6), -10.0)
    heat[0, 0, 1, 1] = math.log(0.8 / 0.2)
    heat[0, 1, 4, 4] = math.log(0.4 / 0.6)
    peaks = teacher_peaks(heat, score_thresh=0.1, max_peaks=10)
    assert peaks[0, 1, 1].item() == pytest.approx(0.8) and peaks[0, 4, 4].item() == pytest.approx(0.4)
    assert (peaks > 0).sum() == 2
    t_reg = torch.zeros(1, 10, 6, 6)
    s_reg = torch.zeros(1, 10, 6, 6)
    s_reg[0, :, 1, 1] = 1.0  # L1 at the 0.8 peak: 8 box parameters + 0.2 * 2 velocity = 8.4; 0 at the 0.4 peak
    s_reg[0, :, 3, 3] = 100.0  # no teacher box there
    loss = PredictionL1Loss()((heat, s_reg), (heat, t_reg), ctx)
    assert loss.item() == pytest.approx(0.8 * 8.4 / 1.2, rel=1e-5)  # paper: s_T / sum s_T
    # the authors' code squares the score in the numerator (s_T^2 / sum s_T)
    squared = PredictionL1Loss(score_power=2)((heat, s_reg), (heat, t_reg), ctx)
    assert squared.item() == pytest.approx(0.8 ** 2 * 8.4 / 1.2, rel=1e-5)
    # kd3d before: velocity weighted like every other parameter
    old = PredictionL1Loss(velocity_weight=1.0)((heat, s_reg), (heat, t_reg), ctx)
    assert old.item() == pytest.approx(0.8 * 10 / 1.2, rel=1e-5) and old.item() != pytest.approx(loss.item())
    with pytest.raises(ValueError, match="score_power"):
        PredictionL1Loss(score_power=3)


def test_bevdistill_end_to_end_trains_adapters_and_heads():
    torch.manual_seed(0)
    grid = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)
    terms, adapters = bevdistill_terms(student_channels=8, teacher_channels=16, proj_dim=8, hidden=16,
                                       feature_key="bev_neck")  # the toy detector has no CenterHead
    d = Distiller(student=TinyBEVDetector(grid=grid, width=4), teacher=TinyBEVDetector(grid=grid, width=8),
                  terms=terms, adapters=adapters)
    proj = d.term_losses["bevdistill/instance"].student_proj[0].weight.clone()
    hist = train_steps(d, [make_batch(i) for i in range(2)])
    assert {"distill/bevdistill/dense", "distill/bevdistill/instance", "distill/bevdistill/prediction"} <= set(hist[0])
    assert all(math.isfinite(v) for h in hist for v in h.values())
    assert not torch.equal(proj, d.term_losses["bevdistill/instance"].student_proj[0].weight)
    assert not any(k.startswith("term_losses") for k in d.student_state_dict())


def test_prediction_term_without_velocity_ignores_velocity_channels():
    grid = BEVGrid(0, 0, 6, 6, 1, 1)
    ctx = ctx_for([[]], grid)
    heat = torch.full((1, 1, 6, 6), -10.0)
    heat[0, 0, 2, 2] = 0.0  # one teacher peak, score 0.5
    t_reg = torch.zeros(1, 20, 6, 6)  # two tasks: channels 8, 9 and 18, 19 are velocity
    s_reg = torch.zeros(1, 20, 6, 6)
    s_reg[0, [8, 9, 18, 19], 2, 2] = 5.0
    s_reg[0, 0, 2, 2] = 1.0
    with_vel = PredictionL1Loss()((heat, s_reg), (heat, t_reg), ctx)
    without = PredictionL1Loss(distill_velocity=False)((heat, s_reg), (heat, t_reg), ctx)
    # velocity channels weigh 0.2 (the authors' code weights): 1 + 0.2 * 4 * 5 = 5
    assert with_vel.item() == pytest.approx(5.0, rel=1e-5) and without.item() == pytest.approx(1.0, rel=1e-5)
    unweighted = PredictionL1Loss(velocity_weight=1.0)((heat, s_reg), (heat, t_reg), ctx)
    assert unweighted.item() == pytest.approx(21.0, rel=1e-5)  # kd3d before
    terms, _ = bevdistill_terms(student_channels=4, teacher_channels=8, distill_velocity=False)
    assert next(t for t in terms if t.name == "bevdistill/prediction").loss.distill_velocity is False


def test_dense_feature_is_the_center_head_shared_conv():
    """'head_shared' is relu(BN(conv3x3(x))) of the CenterHead, the map every task branch reads."""
    grid = BEVGrid(0, 0, 3, 3, 1, 1)
    head = CenterHead(in_channels=1, tasks=[["car"]], grid=grid, share_channels=1, head_channels=2).eval()
    conv, bn = head.shared[0], head.shared[1]
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, 0, 1, 1] = 2.0  # centre tap only: conv(x) = 2x
        bn.running_mean.fill_(1.0), bn.running_var.fill_(4.0), bn.weight.fill_(3.0), bn.bias.fill_(0.5)
    bn.eps = 0.0
    x = torch.tensor([[-1.0, 0.0, 0.5], [1.0, 2.0, 3.0], [0.25, 0.75, -2.0]]).view(1, 1, 3, 3)
    feats = head.named_feats(head(x))
    expected = torch.clamp(3.0 * (2.0 * x - 1.0) / 2.0 + 0.5, min=0.0)  # relu(gamma (y - mu) / sigma + beta)
    assert torch.allclose(feats["head_shared"], expected)
    assert set(feats) == {"heatmap", "reg", "head_shared"}


def _specs(c_shared, c_neck, grid):
    return {"head_shared": FeatureSpec(c_shared, "bev", 1, grid=grid),
            "bev_neck": FeatureSpec(c_neck, "bev", 1, grid=grid),
            "heatmap": FeatureSpec(1, "bev", 1, grid=grid), "reg": FeatureSpec(10, "bev", 1, grid=grid)}


def test_default_keys_dense_on_head_shared_instance_on_head_input():
    terms, adapters = bevdistill_terms(student_specs=_specs(64, 256, GRID), teacher_specs=_specs(64, 512, GRID))
    by = {t.name: t for t in terms}
    # the authors: dense term on the shared conv outputs (equal widths, no adapter), InfoNCE on the head input
    assert (by["bevdistill/dense"].student_key, by["bevdistill/dense"].adapter) == ("head_shared", None)
    assert by["bevdistill/instance"].student_key == "bev_neck" and adapters == {}
    inst = by["bevdistill/instance"].loss
    assert inst.student_proj[0].in_features == 256 and inst.teacher_proj[0].in_features == 512
    # projection heads: Linear(C, 512), Linear(512, 512), BatchNorm1d(512), ReLU, Linear(512, 512)
    assert [type(m).__name__ for m in inst.teacher_proj] == ["Linear", "Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert [m.out_features for m in inst.teacher_proj if isinstance(m, torch.nn.Linear)] == [512, 512, 512]
    # the head-input variant keeps its 1x1 adapter (widths differ)
    terms, adapters = bevdistill_terms(student_specs=_specs(64, 256, GRID), teacher_specs=_specs(64, 512, GRID),
                                       feature_key="bev_neck", instance_weight=0, prediction_weight=0)
    assert terms[0].adapter == "bevdistill_dense" and (adapters["bevdistill_dense"].conv.in_channels,
                                                        adapters["bevdistill_dense"].conv.out_channels) == (256, 512)
    with pytest.raises(ValueError, match="dense_adapter=False"):
        bevdistill_terms(student_specs=_specs(32, 256, GRID), teacher_specs=_specs(64, 512, GRID), dense_adapter=False)


def test_dense_term_mean_of_per_sample_normalised_losses():
    w_box = 1 + 4 * math.exp(-2) + 4 * math.exp(-4)  # radius-1 Gaussian (sigma 1/2) around a centre cell
    grid = BEVGrid(0, 0, 7, 7, 1, 1)
    ctx = ctx_for([[box(3.5, 3.5, 0.5, 0.5)], [box(1.5, 1.5, 0.5, 0.5), box(5.5, 5.5, 0.5, 0.5)]], grid)
    t = torch.zeros(2, 1, 7, 7)
    t[0, 0, 3, 3] = 1.0  # sample 0: num 1, den w_box
    t[1, 0, 1, 1] = 3.0  # sample 1: num 9, den 2 w_box (two disjoint 3x3 Gaussians)
    s = torch.zeros(2, 1, 7, 7)
    loss = ForegroundGaussianMSE()(s, t, ctx)
    assert loss.item() == pytest.approx((1 / w_box + 9 / (2 * w_box)) / 2, rel=1e-5)  # 2.75 / w_box
    pooled = ForegroundGaussianMSE(batch_reduction="pooled")(s, t, ctx)  # kd3d before: 10 / (3 w_box)
    assert pooled.item() == pytest.approx(10 / (3 * w_box), rel=1e-5) and pooled.item() > loss.item() * 1.2
    with pytest.raises(ValueError, match="batch_reduction"):
        ForegroundGaussianMSE(batch_reduction="batch")


def test_infonce_teacher_embeddings_are_the_anchors():
    """Three instances with unit features at angles; logits M_ij = cos(b_i - a_j) / T, teacher i
    (angle b_i) against student j (angle a_j). Teacher anchors: CE over the rows of M; kd3d
    before (student anchors): CE over its columns."""
    grid = BEVGrid(0, 0, 4, 4, 1, 1)
    cells = [(0, 0), (1, 2), (3, 1)]  # (row, col)
    ctx = ctx_for([[box(c + 0.5, r + 0.5, 1, 1) for r, c in cells]], grid)
    # student embeddings all equal: each teacher anchor sees three identical students -> CE = log 3;
    # student anchors see teachers at 0, 90 and 180 degrees -> a different value
    a, b = [0.0, 0.0, 0.0], [0.0, math.pi / 2, math.pi]  # student / teacher angles
    s, t = torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4)
    for (r, c), ai, bi in zip(cells, a, b):
        s[0, :, r, c] = torch.tensor([math.cos(ai), math.sin(ai)])
        t[0, :, r, c] = torch.tensor([math.cos(bi), math.sin(bi)])
    T = 0.5
    m = [[math.cos(bi - aj) / T for aj in a] for bi in b]
    rows = sum(-m[i][i] + math.log(sum(math.exp(v) for v in m[i])) for i in range(3)) / 3
    cols = sum(-m[j][j] + math.log(sum(math.exp(m[i][j]) for i in range(3))) for j in range(3)) / 3
    for anchor, expected in (("teacher", rows), ("student", cols)):
        loss = InstanceContrastiveLoss(student_channels=2, teacher_channels=2, temperature=T, anchor=anchor)
        loss.student_proj, loss.teacher_proj = torch.nn.Identity(), torch.nn.Identity()
        assert loss(s, t, ctx).item() == pytest.approx(expected, rel=1e-5), anchor
    assert rows == pytest.approx(math.log(3.0)) and cols > rows + 1.0  # the anchor changes the value
    with pytest.raises(ValueError, match="anchor"):
        InstanceContrastiveLoss(student_channels=2, teacher_channels=2, anchor="both")


def test_infonce_single_instance_is_zero_with_heads_in_graph():
    grid = BEVGrid(0, 0, 4, 4, 1, 1)
    loss = InstanceContrastiveLoss(student_channels=2, teacher_channels=2).train()  # BatchNorm1d needs >= 2 rows
    s = torch.randn(1, 2, 4, 4, requires_grad=True)
    out = loss(s, torch.randn(1, 2, 4, 4), ctx_for([[box(0.5, 0.5, 1, 1)]], grid))
    out.backward()
    assert out.item() == 0.0 and all(p.grad is not None for p in loss.parameters())
