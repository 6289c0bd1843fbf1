"""PointDistiller (issue 11, items 1-6): neighbour candidates, per-edge loss, reweighting on the raw
importance, kept-point importance, the features the configs distil, per-sample graphs.

Expected values are worked out by hand in each test on tiny inputs; where kd3d's term changed,
the value the old formula gave is written out too and shown to differ.
"""
import math

import pytest
import torch
import real_models as rm
from helpers import train_steps
from types import SimpleNamespace

from kd3d.distill import Distiller
from kd3d.distill.methods.pointdistiller import (PRESETS, PointDistillerLoss, kept_point_counts, knn_indices,
                                                 pointdistiller_terms, reweight, select_top_n)
from kd3d.models.base import ModelOutput
from kd3d.ops.spconv import Voxelizer, sparse_tensor

BN = 1 / (1 + 1e-5)  # BatchNorm in eval with running_var 1: x / sqrt(1 + eps), squared


def _pick_neighbour(loss, c):
    """Edge conv G[n, :, k] = ReLU(z_j) (the neighbour half of cat[z_j, z_i]); BN in eval."""
    for edge in (loss.student_edge, loss.teacher_edge):
        with torch.no_grad():
            edge.net[0].weight.zero_()
            edge.net[0].weight[:, :c, 0, 0] = torch.eye(c)
        edge.net[1].eval()


def _dense(values):
    """(M,) or (M, C) item features -> a (1, C, 1, M) map (M cells of one sample)."""
    v = torch.as_tensor(values, dtype=torch.float32)
    v = v[:, None] if v.dim() == 1 else v
    return v.t()[None, :, None, :].contiguous()


def test_select_top_n_by_hand():
    assert select_top_n(torch.tensor([3.0, 1.0, 4.0, 1.0, 5.0]), 3).tolist() == [4, 2, 0]
    assert select_top_n(torch.tensor([2.0, 2.0, 1.0]), 5).tolist() == [0, 1, 2]  # ties: lower index first


def test_item1_neighbours_among_all_items_centre_first():
    z = torch.tensor([[4.0], [2.0], [1.0], [2.5]])
    centres = select_top_n(z[:, 0], 2)  # items 0 (4.0) and 3 (2.5)
    assert centres.tolist() == [0, 3]
    # item 0: distances [0, 2, 3, 1.5]; item 3: [1.5, 0.5, 1.5, 0] -> itself, then the nearest
    assert knn_indices(z, centres, 2).tolist() == [[0, 3], [3, 1]]
    # the old search (among the top-N only, centre excluded) gave [[3], [0]]: no row coincides
    assert knn_indices(z, centres, 10).shape == (2, 4)  # K clamps to the M items of the sample
    dup = torch.zeros(3, 2)  # identical features: the centre still comes first
    assert knn_indices(dup, torch.tensor([2, 1]), 1).tolist() == [[2], [1]]


def test_item2_item3_per_edge_loss_golden_and_old_value_differs():
    loss = PointDistillerLoss(student_channels=1, teacher_channels=1, graph_channels=1, num_items=2, k=2, tau=1.0)
    _pick_neighbour(loss, 1)
    t = _dense([4.0, 2.0, 1.0, 2.5])
    s = _dense([1.0, 0.0, 0.0, 1.0])
    # neighbours [[0, 3], [3, 1]] (previous test): G_T = [[4, 2.5], [2.5, 2]], G_S = [[1, 1], [1, 0]]
    # squared differences [[9, 2.25], [2.25, 4]]; phi = 2 softmax([4, 2.5] / 1)
    a = 1 / (1 + math.exp(-1.5))
    phi0, phi3 = 2 * a, 2 * (1 - a)
    expected = 2 * (phi0 * (9 + 2.25) + phi3 * (2.25 + 4)) / 4 * BN
    assert loss(s, t, None).item() == pytest.approx(expected, rel=1e-5)
    # the old term: top-N candidates without the centre (item 0 <-> item 3), max over K, no factor
    # 2, phi = 2 softmax([4, 2.5] / 4 / tau): mean of phi * [(2.5 - 1)^2, (4 - 1)^2]
    b = 1 / (1 + math.exp(-(1 - 2.5 / 4)))
    old = (2 * b * 2.25 + 2 * (1 - b) * 9) / 2 * BN
    assert abs(old - expected) > 1.0
    # pool='max' (point-based detectors): max over K first -> G_T = [4, 2.5], G_S = [1, 1]
    pooled = PointDistillerLoss(student_channels=1, teacher_channels=1, graph_channels=1, num_items=2, k=2,
                                tau=1.0, pool="max")
    _pick_neighbour(pooled, 1)
    assert pooled(s, t, None).item() == pytest.approx(2 * (phi0 * 9 + phi3 * 2.25) / 2 * BN, rel=1e-5)


def test_item3_reweight_raw_importance():
    phi = reweight(torch.tensor([4.0, 2.0]), tau=1.0)  # raw: 2 softmax([4, 2])
    assert phi.tolist() == pytest.approx([2 / (1 + math.exp(-2)), 2 / (1 + math.exp(2))], rel=1e-6)
    old = [2 / (1 + math.exp(-0.5)), 2 / (1 + math.exp(0.5))]  # old: 2 softmax([1, 0.5]) after / max
    assert abs(phi[0].item() - old[0]) > 0.1
    assert reweight(torch.tensor([4.0, 2.0, 1.0]), tau=None).tolist() == [1.0, 1.0, 1.0]
    # counts capped at the voxelizer's max (tau 1e-2): the capped items share the weight equally
    assert reweight(torch.tensor([20.0, 20.0, 3.0]), tau=1e-2).tolist() == pytest.approx([1.5, 1.5, 0.0], abs=1e-6)
    assert PRESETS["second"]["tau"] == "uniform" and PRESETS["pointpillars"]["tau"] == 1e-2


def test_item4_kept_counts_capped_by_the_voxelizer():
    vox = Voxelizer(voxel_size=[1.0, 1.0, 4.0], point_range=[0, 0, 0, 4, 4, 4], max_points_per_voxel=3)
    pts = torch.zeros(7, 5)
    pts[:5, :3] = torch.tensor([0.5, 0.5, 1.0])  # 5 points in pillar (y 0, x 0): 3 kept
    pts[5:, :3] = torch.tensor([1.5, 1.5, 1.0])  # 2 points in pillar (y 1, x 1)
    voxels, coords, num = vox.batch([pts])
    from kd3d.models.lidar.encoders import kept_counts

    counts = kept_counts(num, coords, vox.spatial_shape, 1)
    items = torch.tensor([[0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 3, 3]], dtype=torch.int32)
    assert kept_point_counts(counts, items, vox.spatial_shape).tolist() == [2.0, 3.0, 0.0]  # not 5 (all points)
    # a stride-2 stage (1, 2, 2): stage cell (0, 0) holds both pillars -> 3 + 2
    stage = torch.tensor([[0, 0, 0, 0], [0, 0, 1, 1]], dtype=torch.int32)
    assert kept_point_counts(counts, stage, (1, 2, 2)).tolist() == [5.0, 0.0]


def test_item4_term_reads_the_teachers_kept_counts():
    """Sparse items: importance = the teacher's ``voxel_num_points``; N = 1 picks the pillar
    with the most kept points, not the one with the largest feature."""
    idx = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 2]], dtype=torch.int32)
    ft = sparse_tensor(torch.tensor([[9.0], [1.0], [2.0]]), idx, (1, 1, 3), 1)
    fs = sparse_tensor(torch.zeros(3, 1), idx, (1, 1, 3), 1)
    counts = sparse_tensor(torch.tensor([[1.0], [4.0], [2.0]]), idx, (1, 1, 3), 1)
    loss = PointDistillerLoss(student_channels=1, teacher_channels=1, graph_channels=1, num_items=1, k=2, tau=1e-2,
                              importance="points")
    _pick_neighbour(loss, 1)
    assert loss.extra_teacher_keys == ("voxel_num_points",)  # a teacher cache stores them
    ctx = SimpleNamespace(teacher_out=ModelOutput(feats={"voxel_num_points": counts}))
    # centre = item 1 (4 points); neighbours: itself (1.0), item 2 (2.0); G_S = 0; phi = 1
    assert loss(fs, ft, ctx).item() == pytest.approx(2 * (1 + 4) / 2 * BN, rel=1e-5)
    with pytest.raises(KeyError, match="voxel_num_points"):
        loss(fs, ft, SimpleNamespace(teacher_out=ModelOutput(feats={})))


def test_item6_graphs_per_sample():
    """Two samples: sample 1's small features still get their own centres, and no edge joins
    the samples (over the pooled batch, both centres and all neighbours would be sample 0's)."""
    loss = PointDistillerLoss(student_channels=1, teacher_channels=1, graph_channels=1, num_items=1, k=2,
                              tau=None)
    _pick_neighbour(loss, 1)
    t = torch.cat([_dense([5.0, 4.0, 0.0]), _dense([0.5, 0.1, 0.2])])
    s = torch.zeros_like(t)
    # sample 0: centre 0, neighbours [0, 1] -> (25 + 16) / 2; sample 1: centre 0, neighbours
    # [0, 2] -> (0.25 + 0.04) / 2; each times 2, then the mean over the samples
    expected = (2 * 41 / 2 + 2 * 0.29 / 2) / 2 * BN
    assert loss(s, t, None).item() == pytest.approx(expected, rel=1e-5)


def test_gradient_reaches_the_student_only():
    loss = PointDistillerLoss(student_channels=2, teacher_channels=3, graph_channels=4, num_items=3, k=2, tau=None)
    s = torch.randn(2, 2, 3, 3, requires_grad=True)
    t = torch.randn(2, 3, 3, 3, requires_grad=True)
    loss(s, t, None).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0
    assert loss.student_edge.net[0].weight.grad is not None and loss.teacher_edge.net[0].weight.grad is not None


def test_item5_presets_and_terms():
    terms, adapters = pointdistiller_terms(student_channels=[8, 16], teacher_channels=[16, 32], preset="second",
                                           feature_key=["bev_stage1", "bev_stage2"])
    assert adapters == {} and [t.name for t in terms] == ["pointdistiller/bev_stage1", "pointdistiller/bev_stage2"]
    for t in terms:
        assert (t.loss.num_items, t.loss.k, t.loss.tau, t.loss.importance, t.loss.pool) == (
            256, 128, None, "feature_max", "none")
    (pillar,) = pointdistiller_terms(student_channels=8, teacher_channels=16, preset="pointpillars")[0]
    assert (pillar.student_key, pillar.loss.importance, pillar.loss.tau) == ("voxel", "points", 1e-2)
    (opt,) = pointdistiller_terms(student_channels=8, teacher_channels=16, preset="second", tau=1e-4)[0]
    assert opt.loss.tau == 1e-4
    with pytest.raises(ValueError, match="unknown preset"):
        pointdistiller_terms(student_channels=1, teacher_channels=1, preset="bogus")
    with pytest.raises(ValueError, match="one per feature key"):
        pointdistiller_terms(student_channels=[1], teacher_channels=[1, 2], feature_key=["a", "b"])


def test_item5_pillar_features_train_with_kept_counts():
    """The real pillar model: ``voxel`` = pillar features before the scatter, importance from its
    ``voxel_num_points`` (capped at max_points_per_pillar)."""
    teacher, student = rm.lidar_pillar(width=0.25), rm.lidar_pillar(width=0.125, seed=1)
    batch = rm.real_batch(0)
    with torch.no_grad():
        feats = teacher(batch).feats
    counts = feats["voxel_num_points"]
    assert torch.equal(counts.indices, feats["voxel"].indices)
    assert counts.features.max().item() <= teacher.encoder.voxelizer.max_points_per_voxel
    terms, _ = pointdistiller_terms(student_channels=8, teacher_channels=16, preset="pointpillars",
                                    num_items=64, k=8)
    d = Distiller(student=student, teacher=teacher, terms=terms)
    hist = train_steps(d, [batch])
    assert math.isfinite(hist[0]["distill/pointdistiller/voxel"]) and hist[0]["distill/pointdistiller/voxel"] > 0
    assert all(p.grad is None for p in teacher.parameters())
