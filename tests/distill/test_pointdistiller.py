"""PointDistiller: top-N selection, kNN neighbours, reweighting, graph loss; voxel and pillar inputs."""
import math

import pytest
import torch
from helpers import train_steps
from toy_models import TinyBEVDetector, TinySparseNet, make_batch

from kd3d.distill import Distiller
from kd3d.distill.methods.pointdistiller import (PRESETS, PointDistillerLoss, knn_indices, pointdistiller_terms,
                                                 reweight, select_top_n, voxel_point_counts)
from kd3d.structures import BEVGrid


def test_select_top_n_and_knn_by_hand():
    assert select_top_n(torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0]), 3).tolist() == [4, 2, 0]
    assert select_top_n(torch.tensor([2.0, 2.0, 1.0]), 5).tolist() == [0, 1, 2]  # ties: lower index first
    z = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    assert knn_indices(z, 2).tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert knn_indices(z, 10).shape == (4, 3)  # k clamps to N - 1, self excluded


def test_voxel_point_counts():
    pts = torch.tensor([[0.1, 0.1, 0.1], [0.4, 0.2, 0.3], [1.2, 0.1, 0.1], [9.0, 9.0, 9.0]])
    idx = torch.tensor([[0, 0, 0], [0, 0, 2], [0, 1, 1]])  # z y x
    counts = voxel_point_counts(pts, idx, voxel_size=[0.5, 0.5, 0.5], point_range=[0, 0, 0, 2, 2, 1],
                                spatial_shape=[2, 4, 4])
    assert counts.tolist() == [2.0, 1.0, 0.0]


def test_reweight_golden():
    phi = reweight(torch.tensor([1.0, 0.5]), tau=0.5)  # scores / max = [1, .5]; / tau = [2, 1]
    e = math.e
    assert phi.tolist() == pytest.approx([2 * e / (e + 1), 2 / (e + 1)], rel=1e-6)
    assert phi.sum().item() == pytest.approx(2.0)


def _identity_edges(loss, c):
    """Edge conv G = ReLU(z_i): conv picks the centre half of cat[z_j, z_i]; BN in eval = identity."""
    for edge in (loss.student_edge, loss.teacher_edge):
        conv, bn = edge.net[0], edge.net[1]
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[:, c:, 0, 0] = torch.eye(c)
        bn.eval()


def test_graph_loss_golden_dense_maps():
    loss = PointDistillerLoss(student_channels=2, teacher_channels=2, graph_channels=2, num_items=2, k=1, tau=0.5)
    _identity_edges(loss, 2)
    t = torch.zeros(1, 2, 1, 3)
    t[0, :, 0, 0] = torch.tensor([4.0, 0.0])  # importance (channel max) 4
    t[0, :, 0, 1] = torch.tensor([0.0, 2.0])  # importance 2
    t[0, :, 0, 2] = torch.tensor([1.0, 1.0])  # importance 1: not selected (N = 2)
    s = torch.zeros(1, 2, 1, 3)
    s[0, :, 0, 2] = 9.0  # differences at unselected items cost nothing
    phi = reweight(torch.tensor([4.0, 2.0]), tau=0.5)
    # G_T = relu(z_T) of the 2 selected items; G_S = 0: mean over (N=2, C=2) of phi * G_T^2
    expected = (phi[0] * 16 + phi[1] * 4) / 4
    eps_scale = 1 / (1 + 1e-5)  # BatchNorm eps with running_var 1
    assert loss(s, t, None).item() == pytest.approx(expected.item() * eps_scale, rel=1e-4)


def test_sparse_voxel_students_05x_025x_train():
    torch.manual_seed(0)
    batch = make_batch(0)
    teacher = TinySparseNet(width=8)
    for width in (4, 2):  # 0.5x and 0.25x students
        terms, _ = pointdistiller_terms(student_channels=width, teacher_channels=8, feature_key="voxel",
                                        preset="second", k=8, voxel_size=TinySparseNet.VOXEL,
                                        point_range=TinySparseNet.RANGE)
        assert terms[0].loss.importance == "points" and terms[0].loss.num_items == 256
        d = Distiller(student=TinySparseNet(width=width), teacher=teacher, terms=terms)
        hist = train_steps(d, [batch])
        assert math.isfinite(hist[0]["distill/pointdistiller/local"]) and hist[0]["distill/pointdistiller/local"] > 0
        assert d.term_losses["pointdistiller/local"].student_edge.net[0].weight.grad is not None


def test_pillar_bev_student_trains():
    torch.manual_seed(0)
    grid = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)
    terms, _ = pointdistiller_terms(student_channels=4, teacher_channels=8, feature_key="bev", preset="pointpillars",
                                    num_items=64, k=8)
    assert terms[0].loss.tau == PRESETS["pointpillars"]["tau"] and terms[0].loss.importance == "feature_max"
    d = Distiller(student=TinyBEVDetector(grid=grid, width=4), teacher=TinyBEVDetector(grid=grid, width=8),
                  terms=terms)
    hist = train_steps(d, [make_batch(1)])
    assert math.isfinite(hist[0]["distill/pointdistiller/local"])
    with pytest.raises(ValueError, match="unknown preset"):
        pointdistiller_terms(student_channels=1, teacher_channels=1, preset="bogus")
