"""UniDistill: keypoint feature / relation / response terms by hand; all four modality pairs."""
import math

import pytest
import torch
from helpers import box, ctx_for, train_steps
from toy_models import TinyBEVDetector, make_batch

from kd3d.distill import Distiller
from kd3d.distill.methods.unidistill import (UNIDISTILL_WEIGHTS, KeypointFeatureLoss, KeypointRelationLoss,
                                             ResponseLoss, unidistill_terms)
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
    ctx = ctx_for([[box(2.5, 2.5, 0.5, 0.5)]], GRID)  # radius 1 around cell (2, 2)
    heat_t = torch.zeros(1, 3, 8, 8)  # sigmoid(0 / 2) = 0.5
    heat_s = torch.zeros(1, 3, 8, 8)
    reg_t = torch.zeros(1, 2, 8, 8)
    reg_s = torch.zeros(1, 2, 8, 8)
    reg_s[0, :, 2, 2] = 1.0  # L1 = 2 at the centre only
    wsum = 1 + 4 * math.exp(-2) + 4 * math.exp(-4)
    loss = ResponseLoss()((heat_s, reg_s), (heat_t, reg_t), ctx)
    assert loss.item() == pytest.approx(2.0 / wsum, rel=1e-5)
    # teacher logits are halved: teacher logit 2 -> sigmoid(1); student logit 1 matches it
    heat_t2 = torch.full((1, 3, 8, 8), 2.0)
    heat_s2 = torch.ones(1, 3, 8, 8)
    assert ResponseLoss()((heat_s2, reg_t), (heat_t2, reg_t), ctx).item() == pytest.approx(0.0, abs=1e-6)


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
    ctx = ctx_for([[box(2.5, 2.5, 0.5, 0.5)]], GRID)
    heat = torch.zeros(1, 3, 8, 8)
    reg_t = torch.zeros(1, 10, 8, 8)
    reg_s = torch.zeros(1, 10, 8, 8)
    reg_s[0, 8:10, 2, 2] = 3.0  # velocity only
    wsum = 1 + 4 * math.exp(-2) + 4 * math.exp(-4)
    assert ResponseLoss()((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(6.0 / wsum, rel=1e-5)
    assert ResponseLoss(distill_velocity=False)((heat, reg_s), (heat, reg_t), ctx).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="multiple"):
        ResponseLoss(distill_velocity=False)((heat, reg_s[:, :7]), (heat, reg_t[:, :7]), ctx)
