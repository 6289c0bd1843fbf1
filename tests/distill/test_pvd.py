"""PVD: supervoxel partition, difficulty-aware sampling distribution, affinity and KL terms."""
import math
from types import SimpleNamespace

import pytest
import torch
from helpers import train_steps
from toy_models import TinySparseNet, make_batch

from kd3d.distill import Distiller
from kd3d.distill.distiller import DistillContext
from kd3d.distill.methods.pvd import (AffinityDistillLoss, VoxelKLLoss, pvd_terms, supervoxel_ids,
                                      supervoxel_probabilities)
from kd3d.models.base import ModelOutput
from kd3d.ops.spconv import sparse_tensor


def test_cylindrical_supervoxels_by_hand():
    xyz = torch.tensor([[5.0, 0.1, 0.0], [5.0, -0.1, 0.0], [25.0, 0.1, 0.0], [-60.0, 0.1, 0.0], [0.1, 5.0, 0.0]])
    ids = supervoxel_ids(xyz, rho_max=50.0, num_rho=5, num_phi=4, num_z=1)
    # phi sectors of 90 deg from -pi: (+x, +y) -> sector 2, (+x, -y) -> 1, (-x, +y) -> 3
    assert ids.tolist() == [0 * 4 + 2, 0 * 4 + 1, 2 * 4 + 2, 4 * 4 + 3, 0 * 4 + 2]
    cubic = supervoxel_ids(xyz[[0, 2, 4]], mode="cubic", cube=10.0)  # cubes (0, 0), (2, 0), (0, 0)
    assert cubic[0] == cubic[2] and cubic[0] != cubic[1]
    with pytest.raises(ValueError, match="mode"):
        supervoxel_ids(xyz, mode="hex")


def test_sampling_distribution_rare_and_far_weigh_more():
    xyz = torch.tensor([[5.0, 0.0, 0.0]] * 4 + [[45.0, 0.0, 0.0]])
    labels = torch.tensor([1, 1, 1, 1, 2])
    sv = supervoxel_ids(xyz)
    ids, probs = supervoxel_probabilities(sv, labels, xyz, rho_max=50.0)
    # w_1 = sqrt(4/4) = 1, w_2 = sqrt(4/1) = 2; near: 1 * (1 + 5/50), far: 2 * (1 + 45/50)
    near, far = 1.0 * 1.1, 2.0 * 1.9
    assert probs.tolist() == pytest.approx([near / (near + far), far / (near + far)], rel=1e-6)
    # the sampler draws with these probabilities
    g = torch.Generator().manual_seed(0)
    draws = torch.multinomial(probs.float(), 4000, replacement=True, generator=g)
    assert (draws == 1).float().mean().item() == pytest.approx(far / (near + far), abs=0.03)


def _point_ctx(points, key):
    batch = SimpleNamespace(points=points, samples=[SimpleNamespace(num_key_points=k) for k in key],
                            points_label=[None] * len(points))
    return DistillContext(batch=batch, student_out=ModelOutput(), teacher_out=ModelOutput())


def test_affinity_term_golden_one_supervoxel():
    pts = torch.tensor([[5.0, 0.1, 0.0, 0, 0], [5.5, 0.2, 0.0, 0, 0], [40.0, 30.0, 0.0, 0, 0]])
    ctx = _point_ctx([pts], [2])  # only the two key points (same supervoxel) carry features
    s = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # cos = I
    t = torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # cos = all ones
    loss = AffinityDistillLoss(num_supervoxels=4, points_per_supervoxel=8)
    assert loss(s, t, ctx).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="matching neither"):
        loss(torch.zeros(5, 2), torch.zeros(5, 2), ctx)


def test_voxel_kl_matches_coordinates():
    idx = torch.tensor([[0, 0, 0, 0], [0, 0, 0, 1]])
    s = sparse_tensor(torch.zeros(2, 2), idx, [1, 1, 2], 1)
    t = sparse_tensor(torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]]), idx.flip(0), [1, 1, 2], 1)
    # teacher voxel (0,0,0,0) holds [0, 0]; (0,0,0,1) holds [ln3, 0]: KL only at the second
    expected = (0.75 * math.log(1.5) + 0.25 * math.log(0.5)) / 2
    assert VoxelKLLoss()(s, t).item() == pytest.approx(expected, rel=1e-6)


def test_pvd_end_to_end_half_width_student():
    torch.manual_seed(0)
    terms, _ = pvd_terms(num_supervoxels=4, points_per_supervoxel=16, temperature=2.0,
                         voxel_size=TinySparseNet.VOXEL, point_range=TinySparseNet.RANGE)
    assert [t.name for t in terms] == ["pvd/point_kl", "pvd/voxel_kl", "pvd/affinity", "pvd/voxel_affinity"]
    d = Distiller(student=TinySparseNet(width=4), teacher=TinySparseNet(width=8), terms=terms)
    hist = train_steps(d, [make_batch(0), make_batch(1)])
    for h in hist:
        assert set(h) == {"student/ce", "distill/pvd/point_kl", "distill/pvd/voxel_kl", "distill/pvd/affinity",
                          "distill/pvd/voxel_affinity"}
        assert all(math.isfinite(v) and v >= 0 for v in h.values())
    assert hist[0]["distill/pvd/affinity"] > 0 and hist[0]["distill/pvd/voxel_affinity"] > 0


def test_voxel_affinity_on_by_default_with_the_point_affinity_weight():
    """Two voxels (x = 5, 6 on a 1 m grid from (0, -1, -1)) share one supervoxel; student features
    orthogonal (cosine affinity I), teacher features parallel (all ones): MSE = 2 / 4 = 0.5."""
    grid = {"voxel_size": [1.0, 1.0, 1.0], "point_range": [0.0, -1.0, -1.0, 8.0, 1.0, 1.0]}
    terms, _ = pvd_terms(affinity_weight=2.5, **grid)
    (term,) = [t for t in terms if t.name == "pvd/voxel_affinity"]
    assert term.weight == 2.5 and term.student_key == term.teacher_key == "voxel"  # = the point affinity's
    idx = torch.tensor([[0, 0, 0, 5], [0, 0, 0, 6]], dtype=torch.int32)
    s = sparse_tensor(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), idx, [2, 2, 8], 1)
    t = sparse_tensor(torch.tensor([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]), idx, [2, 2, 8], 1)
    assert term.loss(s, t, None).item() == pytest.approx(0.5)
    # kd3d before: off unless asked for (the term is absent, contributing 0); 0 still drops it
    assert "pvd/voxel_affinity" not in [t.name for t in pvd_terms(voxel_affinity_weight=0)[0]]
    with pytest.raises(ValueError, match="voxel_affinity_weight=0"):
        pvd_terms()  # no model and no voxel grid: the error says how to build it or drop it


def test_voxel_affinity_term_on_sparse_features():
    torch.manual_seed(0)
    terms, _ = pvd_terms(point_kl_weight=0, voxel_kl_weight=0, affinity_weight=0, voxel_affinity_weight=1.0,
                         voxel_size=TinySparseNet.VOXEL, point_range=TinySparseNet.RANGE, num_supervoxels=4)
    assert [t.name for t in terms] == ["pvd/voxel_affinity"]
    d = Distiller(student=TinySparseNet(width=4), teacher=TinySparseNet(width=8), terms=terms)
    hist = train_steps(d, [make_batch(0)])
    assert hist[0]["distill/pvd/voxel_affinity"] > 0
    with pytest.raises(ValueError, match="voxel_size and point_range"):
        pvd_terms(voxel_affinity_weight=1.0)
