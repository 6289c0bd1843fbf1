"""BEVDistill terms on hand-made maps, and end to end on tiny models."""
import math

import pytest
import torch
from helpers import box, ctx_for, train_steps
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller
from kd3d.distill.methods.bevdistill import (ForegroundGaussianMSE, InstanceContrastiveLoss, PredictionL1Loss,
                                             bevdistill_terms, teacher_peaks)
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
    # normalised features are one-hot: logits = I / 0.5 -> CE = log(1 + e^{-2})
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
    s_reg[0, :, 1, 1] = 1.0  # L1 over 10 parameters = 10 at the 0.8 peak, 0 at the 0.4 peak
    s_reg[0, :, 3, 3] = 100.0  # no teacher box there
    loss = PredictionL1Loss()((heat, s_reg), (heat, t_reg), ctx)
    assert loss.item() == pytest.approx(0.8 * 10 / 1.2, rel=1e-5)


def test_bevdistill_end_to_end_trains_adapters_and_heads():
    torch.manual_seed(0)
    grid = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)
    terms, adapters = bevdistill_terms(student_channels=8, teacher_channels=16, proj_dim=8, hidden=16)
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
    assert with_vel.item() == pytest.approx(21.0, rel=1e-5) and without.item() == pytest.approx(1.0, rel=1e-5)
    terms, _ = bevdistill_terms(student_channels=4, teacher_channels=8, distill_velocity=False)
    assert next(t for t in terms if t.name == "bevdistill/prediction").loss.distill_velocity is False
