"""Golden hand-computed values of the generic distillation losses."""
import math

import pytest
import torch

from kd3d.distill.losses import (AffinityLoss, AttentionTransferLoss, CWDLoss, KLDivLoss, MSELoss, affinity_loss,
                                 attention_transfer, channel_wise_distillation, fitnet_mse, kl_div_loss)


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
