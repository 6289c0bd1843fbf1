"""UniDistill: keypoint feature / relation / response terms by hand; all four modality pairs."""
import math

import pytest
import torch
from helpers import box, ctx_for, train_steps
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller
from kd3d.distill.methods.unidistill import (UNIDISTILL_WEIGHTS, KeypointFeatureLoss, KeypointRelationLoss,
                                             ResponseLoss, swap_keypoints_xy, unidistill_terms)
from kd3d.structures import BEVGrid

GRID = BEVGrid(0, 0, 8, 8, 1, 1)


def _ramp_x():
    return torch.as_tensor(GRID.cell_centers()[..., 0], dtype=torch.float32)[None, None]


def test_feature_term_axis_aligned_box():
    ctx = ctx_for([[box(4.0, 4.0, 2.0, 2.0)]], GRID)
    # keypoint x: corners 5,3,3,5; centre 4; midpoints 5,4,3,4 -> mean |x - 0| = 36 / 9
    assert KeypointFeatureLoss()(_ramp_x(), torch.zeros(1, 1, 8, 8), ctx).item() == pytest.approx(4.0, rel=1e-6)
    two_ch = torch.cat([_ramp_x(), torch.ones(1, 1, 8, 8)], dim=1)
    assert KeypointFeatureLoss()(two_ch, torch.zeros(1, 2, 8, 8), ctx).item() == pytest.approx(2.5, rel=1e-6)
    assert KeypointFeatureLoss()(two_ch, torch.zeros(1, 2, 8, 8), ctx_for([[]], GRID)).item() == 0.0


def test_relation_term_cosine_matrices():
    ctx = ctx_for([[box(4.0, 4.0, 2.0, 2.0)]], GRID)
    s = torch.cat([torch.ones(1, 1, 8, 8), _ramp_x() - 4.0], dim=1)  # x=5:(1,1) x=4:(1,0) x=3:(1,-1)
    t = torch.ones(1, 3, 8, 8)  # all teacher cosines are 1 (channels may differ)
    # 3 keypoints at each x: 27 same-x pairs (cos 1), 18 pairs (5,3) with cos 0, 36 pairs with cos 1/sqrt2
    expected = (18 * 1.0 + 36 * (1 - 1 / math.sqrt(2))) / 81
    assert KeypointRelationLoss()(s, t, ctx).item() == pytest.approx(expected, rel=1e-5)
    assert KeypointRelationLoss()(t, t, ctx).item() == pytest.approx(0.0, abs=1e-6)


def test_response_term_gaussian_weighted():
    # 0.5 m box: Gaussian radius max(0, floor(r)) = 0 -> one cell of weight 1 at cell (2, 2)
    ctx = ctx_for([[box(2.5, 2.5, 0.5, 0.5)]], GRID)
    heat_t = torch.zeros(1, 3, 8, 8)  # sigmoid(0 / 2) = 0.5
    heat_s = torch.zeros(1, 3, 8, 8)
    reg_t = torch.zeros(1, 2, 8, 8)
    reg_s = torch.zeros(1, 2, 8, 8)
    reg_s[0, :, 2, 2] = 1.0  # |diff| 1 in both channels at the centre only: channel mean 1
    loss = ResponseLoss()((heat_s, reg_s), (heat_t, reg_t), ctx)
    assert loss.item() == pytest.approx(1.0, rel=1e-6)
    # the old rule (radius >= 1: 3x3 Gaussian, channels summed) gave 2 / (1 + 4e^-2 + 4e^-4)
    old = 2.0 / (1 + 4 * math.exp(-2) + 4 * math.exp(-4))
    assert ResponseLoss(min_radius=1)((heat_s, reg_s), (heat_t, reg_t), ctx).item() == pytest.approx(old / 2, rel=1e-5)
    assert loss.item() != pytest.approx(old, rel=1e-2)
    # teacher logits are halved: teacher logit 2 -> sigmoid(1); student logit 1 matches it
    heat_t2 = torch.full((1, 3, 8, 8), 2.0)
    heat_s2 = torch.ones(1, 3, 8, 8)
    assert ResponseLoss()((heat_s2, reg_t), (heat_t2, reg_t), ctx).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("tasks", [1, 6])
def test_response_regression_is_a_channel_mean(tasks):
    """Regression part = mean over the 10 * T channels (= mean over tasks of each task's channel
    mean, the authors' normalisation); the old kd3d sum was 10 * T times larger on it."""
    ctx = ctx_for([[box(2.5, 2.5, 0.5, 0.5)]], GRID)  # one cell of weight 1
    heat_s = torch.zeros(1, 2, 8, 8)  # sigmoid(0) = 0.5
    heat_t = torch.full((1, 2, 8, 8), 2 * math.log(3.0))  # sigmoid(ln 3) = 0.75: |dh| = 0.25
    reg_t = torch.zeros(1, 10 * tasks, 8, 8)
    reg_s = reg_t.clone()
    for t in range(tasks):
        reg_s[0, 10 * t:10 * (t + 1), 2, 2] = t + 1.0  # task t differs by t + 1 in every channel
    task_means = [t + 1.0 for t in range(tasks)]
    new = 0.25 + sum(task_means) / tasks  # 1 task: 1.25; 6 tasks: 0.25 + 3.5 = 3.75
    old = 0.25 + 10 * sum(task_means)  # 1 task: 10.25; 6 tasks: 0.25 + 210 = 210.25
    got = ResponseLoss()((heat_s, reg_s), (heat_t, reg_t), ctx).item()
    assert got == pytest.approx(new, rel=1e-5)
    assert old / got == pytest.approx({1: 8.2, 6: 56.0666667}[tasks], rel=1e-5)


def test_keypoint_xy_swap_option():
    # box at x=5, y=2 (2 x 2 m): true keypoint x = 6,4,4,6 | 5 | 6,5,4,5 (mean 5); the authors'
    # swap reads each point at (y, x) on this square grid, i.e. x' = y = 3,3,1,1 | 2 | 2,3,2,1 (mean 2)
    ctx = ctx_for([[box(5.0, 2.0, 2.0, 2.0)]], GRID)
    zeros = torch.zeros(1, 1, 8, 8)
    assert KeypointFeatureLoss()(_ramp_x(), zeros, ctx).item() == pytest.approx(5.0, rel=1e-6)
    assert KeypointFeatureLoss(swap_keypoint_xy=True)(_ramp_x(), zeros, ctx).item() == pytest.approx(2.0, rel=1e-6)
    terms, _ = unidistill_terms(teacher_modality="lidar", student_modality="camera", student_channels=1,
                                teacher_channels=1, swap_keypoint_xy=True)
    assert [t.loss.swap_keypoint_xy for t in terms[:2]] == [True, True]
    # non-square range: the normalised coordinates are swapped, u' = v, v' = u
    wide = BEVGrid(0, 0, 8, 4, 1, 1)
    kp = torch.tensor([[6.0, 1.0]], dtype=torch.float64)  # u = 0.75, v = 0.25
    assert swap_keypoints_xy(kp, wide).tolist() == [[2.0, 3.0]]


@pytest.mark.parametrize("pair", sorted(UNIDISTILL_WEIGHTS))
def test_all_modality_pairs_train(pair):
    torch.manual_seed(0)
    grid = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)
    # stand-ins: the camera student/teacher is narrower; fusion wider (weights are what differ)
    width = {"camera": 4, "lidar": 8, "fusion": 12}
    t_mod, s_mod = pair
    terms, adapters = unidistill_terms(teacher_modality=t_mod, student_modality=s_mod,
                                       student_channels=width[s_mod], teacher_channels=width[t_mod])
    assert [t.weight for t in terms] == list(UNIDISTILL_WEIGHTS[pair])
    d = Distiller(student=TinyBEVDetector(grid=grid, width=width[s_mod]),
                  teacher=TinyBEVDetector(grid=grid, width=width[t_mod]), terms=terms, adapters=adapters)
    w0 = d.adapters["unidistill_feature"].conv.weight.clone()
    hist = train_steps(d, [make_batch(0)])
    assert all(math.isfinite(v) for v in hist[0].values()) and hist[0]["distill/unidistill/feature"] > 0
    assert not torch.equal(w0, d.adapters["unidistill_feature"].conv.weight)


def test_unknown_pair_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown modality pair"):
        unidistill_terms(teacher_modality="radar", student_modality="camera", student_channels=1, teacher_channels=1)


def test_response_term_without_velocity():
    ctx = ctx_for([[box(2.5, 2.5, 0.5, 0.5)]], GRID)  # one cell of weight 1
    heat = torch.zeros(1, 3, 8, 8)
    reg_t = torch.zeros(1, 10, 8, 8)
    reg_s = torch.zeros(1, 10, 8, 8)
    reg_s[0, 8:10, 2, 2] = 3.0  # velocity only: mean over 10 channels = 6 / 10
    assert ResponseLoss()((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(0.6, rel=1e-5)
    assert ResponseLoss(distill_velocity=False)((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(0.0, abs=1e-7)
    reg_s[0, 0, 2, 2] = 4.0  # without velocity the mean is over the 8 other channels: 4 / 8
    assert ResponseLoss(distill_velocity=False)((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(0.5, rel=1e-5)
    assert ResponseLoss()((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        ResponseLoss(distill_velocity=False)((heat, reg_s[:, :7]), (heat, reg_t[:, :7]), ctx)


def test_relation_term_is_safe_for_tiny_keypoint_features():
    """A near-zero student map (e.g. after a ReLU) gives bounded gradients (F.normalize's default
    eps 1e-12 gave gradients of about 1e7 here)."""
    ctx = ctx_for([[box(4.0, 4.0, 2.0, 2.0)]], GRID)
    torch.manual_seed(0)
    s = (1e-8 * torch.randn(1, 2, 8, 8)).requires_grad_()
    t = torch.cat([torch.ones(1, 1, 8, 8), _ramp_x() - 4.0], dim=1)
    loss = KeypointRelationLoss()(s, t, ctx)
    loss.backward()
    assert torch.isfinite(loss) and s.grad.abs().max().item() < 1e3
