"""Golden hand-computed values of the generic distillation losses."""
import math

import pytest
import torch

from kd3d.distill.losses import (AffinityLoss, AttentionTransferLoss, CWDLoss, KLDivLoss, MSELoss, affinity_loss,
                                 attention_transfer, channel_wise_distillation, cosine_affinity, fitnet_mse,
                                 kl_div_loss)


def _kl(pt, ps):
    return sum(a * math.log(a / b) for a, b in zip(pt, ps))


def test_kl_div_temperature_golden():
    s = torch.tensor([[0.0, 0.0]])
    t = torch.tensor([[math.log(3.0), 0.0]])
    assert kl_div_loss(s, t, temperature=1.0).item() == pytest.approx(_kl([0.75, 0.25], [0.5, 0.5]), rel=1e-6)
    r3 = math.sqrt(3.0)
    expected = 4.0 * _kl([r3 / (1 + r3), 1 / (1 + r3)], [0.5, 0.5])  # T = 2: logits halved, T^2 scaling
    assert kl_div_loss(s, t, temperature=2.0).item() == pytest.approx(expected, rel=1e-6)
    # averaged over positions: a second, identical row keeps the value; a zero-KL row halves it
    s2, t2 = torch.cat([s, s]), torch.cat([t, s])
    assert KLDivLoss(temperature=1.0)(s2, t2).item() == pytest.approx(_kl([0.75, 0.25], [0.5, 0.5]) / 2, rel=1e-6)


def test_kl_gradient_only_to_student():
    s = torch.zeros(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    kl_div_loss(s, t, temperature=3.0).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_fitnet_mse_golden_and_shape_error():
    assert fitnet_mse(torch.tensor([[1.0, 2.0]]), torch.zeros(1, 2)).item() == pytest.approx(2.5)
    assert MSELoss()(torch.tensor([3.0]), torch.tensor([1.0])).item() == pytest.approx(4.0)
    with pytest.raises(ValueError, match="adapter"):
        fitnet_mse(torch.zeros(1, 3), torch.zeros(1, 2))


def test_attention_transfer_golden():
    s = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]]).view(1, 2, 1, 2)
    # Q_S = [1, 0], Q_T = [0, 1] -> mean((1)^2, (1)^2) = 1
    assert attention_transfer(s, t).item() == pytest.approx(1.0)
    assert AttentionTransferLoss()(t, t).item() == pytest.approx(0.0)
    # Q_S = [3, 4] / 5 vs Q_T = [0, 1]: ((0.6)^2 + (0.2)^2) / 2
    s2 = torch.tensor([math.sqrt(3.0), 2.0]).view(1, 1, 1, 2)
    assert attention_transfer(s2, t).item() == pytest.approx((0.36 + 0.04) / 2, rel=1e-6)


def test_cwd_golden():
    s = torch.zeros(1, 1, 1, 2)
    t = torch.tensor([math.log(3.0), 0.0]).view(1, 1, 1, 2)
    assert channel_wise_distillation(s, t, tau=1.0).item() == pytest.approx(_kl([0.75, 0.25], [0.5, 0.5]), rel=1e-6)
    r3 = math.sqrt(3.0)
    expected = 4.0 * _kl([r3 / (1 + r3), 1 / (1 + r3)], [0.5, 0.5])
    assert CWDLoss(tau=2.0)(s, t).item() == pytest.approx(expected, rel=1e-6)
    # two channels, one identical: the mean over B*C halves the value
    s2 = torch.cat([s, t], dim=1)
    t2 = torch.cat([t, t], dim=1)
    assert channel_wise_distillation(s2, t2).item() == pytest.approx(_kl([0.75, 0.25], [0.5, 0.5]) / 2, rel=1e-6)


def test_affinity_golden():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # cos = identity
    t = torch.tensor([[1.0, 0.0, 0.0], [3.0, 0.0, 0.0]])  # cos = all ones; channels differ
    assert affinity_loss(s, t).item() == pytest.approx(0.5)
    maps_s = s.t().reshape(1, 2, 1, 2)
    maps_t = t.t().reshape(1, 3, 1, 2)
    assert AffinityLoss()(maps_s, maps_t).item() == pytest.approx(0.5)


def test_kl_on_maps_is_the_position_mean_batchmean_divides_by_b():
    """(B=1, K=2, H=1, W=2): KL 0.75 ln 1.5 + 0.25 ln 0.5 at one cell, 0 at the other. kd3d: mean
    over the B*H*W = 2 positions; torch's "batchmean": sum / B = H*W times kd3d's value."""
    s = torch.zeros(1, 2, 1, 2)
    t = torch.zeros(1, 2, 1, 2)
    t[0, 0, 0, 0] = math.log(3.0)
    kl = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert kl_div_loss(s, t).item() == pytest.approx(kl / 2, rel=1e-6)
    batchmean = torch.nn.KLDivLoss(reduction="batchmean")(torch.log_softmax(s, 1), torch.softmax(t, 1))
    assert batchmean.item() == pytest.approx(kl, rel=1e-6)
    assert batchmean.item() == pytest.approx(kl_div_loss(s, t).item() * 1 * 2, rel=1e-6)  # x H*W


def _affinity_grad(s0):
    """Gradient of affinity_loss w.r.t. the first student row; student rows s0 and (0, 1),
    teacher rows (1, 0) and (0.6, 0.8) (teacher affinity [[1, 0.6], [0.6, 1]])."""
    s = torch.tensor([s0, [0.0, 1.0]], requires_grad=True)
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    loss = affinity_loss(s, t)
    loss.backward()
    return loss.item(), s.grad[0].tolist()


def test_cosine_affinity_safe_for_zero_and_tiny_vectors():
    """L = mean((A_S - A_T)^2) over 4 entries, so dL/dA = (A_S - A_T) / 2 and
    dL/dn0 = 2 dL/dA_00 n0 + (dL/dA_01 + dL/dA_10) n1 with n = f / max(|f|, eps), eps = 1e-4;
    below eps, dn0/ds0 = I / eps."""
    eps = 1e-4
    # all-zero row: n0 = 0, A_S = [[0, 0], [0, 1]]; L = (1 + 2 * 0.36) / 4; dL/dn0 = -0.6 n1 = (0, -0.6)
    loss, grad = _affinity_grad([0.0, 0.0])
    assert loss == pytest.approx(0.43, rel=1e-6)
    assert grad == pytest.approx([0.0, -0.6 / eps], rel=1e-5)  # |grad| 6e3
    # kd3d before (eps 1e-12): the same formula with 1 / 1e-12, a gradient of 6e11 (1e8 times larger)
    s = torch.zeros(2, 2)
    s[1, 1] = 1.0
    s.requires_grad_(True)
    t = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    ((cosine_affinity(s, eps=1e-12) - cosine_affinity(t)).pow(2).mean()).backward()
    assert s.grad[0].tolist() == pytest.approx([0.0, -0.6 / 1e-12], rel=1e-4)
    # a 1e-8 row: n0 = (1e-4, 0), A_S = [[1e-8, 0], [0, 1]];
    # dL/dn0 = (1e-8 - 1) n0 + (0 - 0.6) n1 = (-(1 - 1e-8) * 1e-4, -0.6)
    loss, grad = _affinity_grad([1e-8, 0.0])
    assert loss == pytest.approx(((1e-8 - 1) ** 2 + 2 * 0.36) / 4, rel=1e-6)
    assert grad == pytest.approx([-(1 - 1e-8) * 1e-4 / eps, -0.6 / eps], rel=1e-4)
    # kd3d before: n0 = (1, 0) exactly, A_S = I, L = 2 * 0.36 / 4; dL/dn0 = -0.6 n1 = (0, -0.6) and
    # dn0/ds0 = (I - n0 n0^T) / 1e-8: a gradient of (0, -6e7)
    s = torch.tensor([[1e-8, 0.0], [0.0, 1.0]], requires_grad=True)
    ((cosine_affinity(s, eps=1e-12) - cosine_affinity(t)).pow(2).mean()).backward()
    assert s.grad[0].tolist() == pytest.approx([0.0, -0.6 / 1e-8], rel=1e-4, abs=1e-3)  # 1e4 times larger
    # rows longer than eps are normalised exactly (unchanged values)
    f = torch.tensor([[3.0, 4.0], [0.0, 2e-4]])
    assert torch.allclose(cosine_affinity(f), torch.tensor([[1.0, 0.8], [0.8, 1.0]]), rtol=1e-6, atol=1e-7)
