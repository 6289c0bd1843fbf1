"""Teacher cache: build once, replay without the teacher, invalidation, atomicity, corruption."""
import dataclasses

import pytest
import torch
from helpers import train_steps
from toy_models import TinyBEVDetector, TinySparseNet, make_batch

from kd3d.distill import Distiller, DistillTerm
from kd3d.distill.adapters import ChannelAdapter
from kd3d.distill.cache import CacheCorruptError, TeacherCache, required_teacher_keys
from kd3d.distill.losses import MSELoss
from kd3d.distill.methods.distillbev import distillbev_terms
from kd3d.distill.methods.pvd import pvd_terms
from kd3d.structures import BEVGrid

GRID = BEVGrid(-8, -8, 8, 8, 1.0, 1.0)


def _setup():
    torch.manual_seed(0)
    teacher = TinyBEVDetector(grid=GRID, width=8)
    terms, adapters = distillbev_terms(levels={"bev_neck": (8, 16)}, a_sp=0.0)
    terms.append(DistillTerm("fit", "bev_stage1", "bev_stage1", MSELoss(), "fit"))
    adapters["fit"] = ChannelAdapter(4, 8)
    return teacher, terms, adapters


def test_build_replay_and_train_without_teacher(tmp_path):
    teacher, terms, adapters = _setup()
    assert required_teacher_keys(terms) == ["bev_neck", "heatmap", "bev_stage1"]
    batches = [make_batch(0), make_batch(1)]
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    assert cache.build(teacher, batches) == 4 and len(cache) == 4
    assert cache.build(teacher, batches) == 0  # already cached
    raw = torch.load(cache.path("tok0_0"), weights_only=True)
    assert set(raw["feats"]) == {"bev_neck", "heatmap", "bev_stage1"}
    assert raw["feats"]["bev_neck"]["data"].dtype == torch.float16
    ref = teacher(batches[1])
    rep = cache.output_for(batches[1])
    for k in ("bev_neck", "heatmap"):
        assert rep.feats[k].dtype == torch.float32
        assert torch.allclose(rep.feats[k], ref.feats[k], atol=1e-2, rtol=1e-3)
    # a student trains from the cache alone, with the same losses as with the live teacher
    student = TinyBEVDetector(grid=GRID, width=4)
    live = Distiller(student=student, teacher=teacher, terms=terms, adapters=adapters)
    cached = Distiller(student=student, teacher=None, terms=terms, adapters=adapters,
                       teacher_cache=TeacherCache.for_teacher(tmp_path, teacher, terms))
    assert cached.teacher_grid == GRID
    live.eval(), cached.eval()
    a, b = live(batches[0]), cached(batches[0])
    for k in a:
        assert b[k].item() == pytest.approx(a[k].item(), rel=2e-2, abs=1e-6), k
    hist = train_steps(cached, batches)
    assert all(v == v for h in hist for v in h.values())


def test_invalidated_when_teacher_or_terms_change(tmp_path):
    teacher, terms, _ = _setup()
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    cache.build(teacher, [make_batch(0)])
    assert not TeacherCache.for_teacher(tmp_path, teacher, terms).invalidated
    with torch.no_grad():
        teacher.head["reg"].bias.add_(1.0)
    again = TeacherCache.for_teacher(tmp_path, teacher, terms)
    assert again.invalidated and len(again) == 0
    again.build(teacher, [make_batch(0)])
    fewer = TeacherCache.for_teacher(tmp_path, teacher, terms[:1])
    assert fewer.invalidated and len(fewer) == 0


def test_truncated_or_foreign_entry_is_a_clear_error(tmp_path):
    teacher, terms, _ = _setup()
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    batch = make_batch(0)
    cache.build(teacher, [batch])
    path = cache.path("tok0_0")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CacheCorruptError, match=r"tok0_0\.pt.*truncated or corrupt"):
        cache.output_for(batch)
    torch.save({"token": "tok0_0", "fingerprint": "other", "feats": {}}, path)
    with pytest.raises(CacheCorruptError, match="does not belong"):
        cache.read("tok0_0")
    with pytest.raises(KeyError, match="no entry for sample 'missing'"):
        cache.read("missing")
    assert not list(cache.entries.glob(".tmp_*"))  # atomic writes leave no temporaries


def test_sparse_and_point_features_round_trip(tmp_path):
    torch.manual_seed(0)
    teacher = TinySparseNet(width=8).eval()
    terms, _ = pvd_terms(voxel_affinity_weight=0)
    batch = make_batch(2)
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    cache.build(teacher, [batch])
    ref, rep = teacher(batch), cache.output_for(batch)
    assert torch.equal(rep.feats["voxel_logits"].indices, ref.feats["voxel_logits"].indices)
    assert torch.allclose(rep.feats["voxel_logits"].features, ref.feats["voxel_logits"].features, atol=1e-2)
    assert torch.allclose(rep.feats["point_feats"], ref.feats["point_feats"], atol=1e-2)
    d = Distiller(student=TinySparseNet(width=4), teacher=None, terms=terms, teacher_cache=cache)
    hist = train_steps(d, [batch])
    assert hist[0]["distill/pvd/voxel_kl"] >= 0


def test_region_cropped_cache_keeps_foreground_only(tmp_path):
    from kd3d.distill.methods.unidistill import unidistill_terms

    torch.manual_seed(0)
    teacher = TinyBEVDetector(grid=GRID, width=8)
    terms, adapters = unidistill_terms(teacher_modality="lidar", student_modality="camera", student_channels=4,
                                       teacher_channels=8)
    batch = make_batch(0)
    full = TeacherCache.for_teacher(tmp_path / "full", teacher, terms)
    crop = TeacherCache.for_teacher(tmp_path / "crop", teacher, terms, region_margin=3.0)
    assert crop.fingerprint != full.fingerprint
    full.build(teacher, [batch]), crop.build(teacher, [batch])
    assert crop.path("tok0_0").stat().st_size < full.path("tok0_0").stat().st_size
    a, b = full.output_for(batch).feats["bev_neck"], crop.output_for(batch).feats["bev_neck"]
    assert torch.equal(b[0, :, 0, 15], torch.zeros(16))  # (x -8.5..., y -7.5): far from both boxes
    cx, cy = int((2.0 + 8) // 1), int((1.0 + 8) // 1)  # first box centre cell of sample 0
    assert torch.equal(a[0, :, cy, cx], b[0, :, cy, cx])
    # UniDistill reads only near the boxes: the same losses from the cropped cache
    student = TinyBEVDetector(grid=GRID, width=4)
    d_full = Distiller(student=student, teacher=None, terms=terms, adapters=adapters, teacher_cache=full).eval()
    d_crop = Distiller(student=student, teacher=None, terms=terms, adapters=adapters, teacher_cache=crop).eval()
    la, lb = d_full(batch), d_crop(batch)
    for k in la:
        assert lb[k].item() == pytest.approx(la[k].item(), rel=1e-5), k


def test_overwritten_bytes_fail_the_checksum(tmp_path):
    """64 bytes of an entry's tensor data overwritten (the file still unpickles): the read names
    the file instead of replaying NaNs into the loss."""
    teacher, terms, _ = _setup()
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    batch = make_batch(0)
    cache.build(teacher, [batch])
    path = cache.path("tok0_0")
    stored = torch.load(path, weights_only=True)["feats"]["bev_neck"]["data"]
    data = bytearray(path.read_bytes())
    at = data.find(stored.numpy().tobytes()[:256])
    assert at > 0
    data[at + 64:at + 128] = b"\xff" * 64  # float16 0xffff = NaN
    path.write_bytes(bytes(data))
    assert torch.isnan(torch.load(path, weights_only=True)["feats"]["bev_neck"]["data"]).any()  # loads silently
    with pytest.raises(CacheCorruptError, match=r"tok0_0\.pt.*checksum"):
        cache.read("tok0_0")
    with pytest.raises(CacheCorruptError, match=r"tok0_0\.pt"):
        cache.output_for(batch)


class _KeyPointNet(TinySparseNet):
    """TinySparseNet with its per-key-point features under a name without the ``point_`` prefix."""

    def forward(self, batch):
        out = super().forward(batch)
        out.feats["pts"] = out.feats.pop("point_feats")
        return out

    def feature_specs(self):
        specs = super().feature_specs()
        specs["pts"] = specs.pop("point_feats")
        return specs


def test_split_follows_the_spec_not_the_name_or_shape(tmp_path):
    """Key-point rows (250 + 150) of a feature not named ``point_*`` are split by the samples'
    key-point counts: replaying the second sample alone gives exactly its own rows."""
    from kd3d.distill.methods.generic import generic_terms
    from kd3d.structures.sample import collate

    torch.manual_seed(0)
    teacher = _KeyPointNet(width=8).eval()
    terms, _ = generic_terms(terms=[{"name": "fit", "loss": "mse", "student_key": "pts", "teacher_key": "pts"}])
    s0, s1 = make_batch(0, num_samples=1, num_points=300).samples[0], make_batch(1, num_samples=1, num_points=200).samples[0]
    cache = TeacherCache.for_teacher(tmp_path, teacher, terms)
    assert cache.build(teacher, [collate([s0, s1])]) == 2
    alone = collate([s1])
    ref, rep = teacher(alone).feats["pts"], cache.output_for(alone).feats["pts"]
    assert rep.shape == ref.shape == (150, 8)
    assert torch.allclose(rep, ref, atol=1e-2)


def test_feature_without_spec_or_with_wrong_rows_is_an_error(tmp_path):
    teacher, terms, _ = _setup()
    cache = TeacherCache(tmp_path, fingerprint="f", keys=["bev_neck"], specs={})
    with pytest.raises(ValueError, match="no feature spec for 'bev_neck'"):
        cache.fill(teacher, make_batch(0))
    spec = teacher.feature_specs()["bev_neck"]
    wrong = TeacherCache(tmp_path / "w", fingerprint="f", keys=["bev_neck"],
                         specs={"bev_neck": dataclasses.replace(spec, kind="key_point", grid=None)})
    with pytest.raises(ValueError, match="'bev_neck' .*key_point.* has 2 rows"):
        wrong.fill(teacher, make_batch(0))
