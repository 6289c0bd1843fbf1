"""Imported teachers voxelize in mmcv's order (tests/fixtures/mmdet3d/voxelization_cases.npz:
mmcv 2.1.0's compiled ``Voxelization`` on points.npy with caps that truncate, recorded by
tools/mmdet3d_fixtures/generate.py). kd3d's spconv default equals it on CPU (measured) but is
hash-ordered on CUDA, so the import path uses :func:`kd3d.ops.voxelize.first_come_voxelize`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from kd3d.interop.export import import_teacher, load_kd3d_model
from kd3d.models.build import ModelConfig, build_model
from kd3d.ops.spconv import Voxelizer

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "mmdet3d"
CASES = dict(np.load(FIX / "voxelization_cases.npz"))
NAMES = ("voxel_trunc", "pillar_trunc")


def voxelizer(name: str, order: str) -> Voxelizer:
    return Voxelizer(voxel_size=CASES[f"{name}_voxel_size"].tolist(), point_range=CASES["point_cloud_range"].tolist(),
                     max_points_per_voxel=int(CASES[f"{name}_max_points"]),
                     max_voxels=int(CASES[f"{name}_max_voxels"]), order=order)


def assert_same_as_mmcv(name: str, got) -> None:
    vox, coords, num = (t.cpu() for t in got)
    # same voxels in the same order (first appearance), same kept points in the same slots
    assert torch.equal(coords, torch.from_numpy(CASES[f"{name}_coors"]))
    assert torch.equal(num, torch.from_numpy(CASES[f"{name}_num_points"]))
    assert torch.equal(vox, torch.from_numpy(CASES[f"{name}_voxels"]))


def test_fixtures_were_voxelized_by_mmcv():
    meta = json.loads((FIX / "metadata.json").read_text())
    assert meta["versions"]["mmcv"] == "2.1.0" and meta["versions"]["mmdet3d"] == "1.4.0"
    assert meta["voxelizer"]["op"].startswith("mmcv._ext.hard_voxelize_forward")
    assert meta["voxelizer"]["sources"][1].endswith("mmcv/ops/csrc/pytorch/cpu/voxelization.cpp")
    for name in NAMES:  # the cases truncate both ways
        assert len(CASES[f"{name}_coors"]) == int(CASES[f"{name}_max_voxels"])
        assert CASES[f"{name}_num_points"].max() == int(CASES[f"{name}_max_points"])


@pytest.mark.parametrize("name", NAMES)
def test_first_come_voxelizer_reproduces_mmcv(name):
    assert_same_as_mmcv(name, voxelizer(name, "first")(torch.from_numpy(np.load(FIX / "points.npy"))))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (where spconv's generator is hash-ordered)")
@pytest.mark.parametrize("name", NAMES)
def test_first_come_voxelizer_reproduces_mmcv_on_cuda(name):
    pts = torch.from_numpy(np.load(FIX / "points.npy")).cuda()
    assert_same_as_mmcv(name, voxelizer(name, "first")(pts))


@pytest.mark.parametrize("name", NAMES)
def test_spconv_default_equals_mmcv_on_cpu(name):
    # measured: spconv's CPU PointToVoxel runs the same first-come loop as mmcv's CPU kernel
    assert_same_as_mmcv(name, voxelizer(name, "spconv")(torch.from_numpy(np.load(FIX / "points.npy"))))


@pytest.mark.parametrize("kind", ["voxel", "pillar"])
def test_imported_teacher_voxelizes_first_come_and_kd3d_defaults_stay(kind, tmp_path):
    import_teacher(FIX / f"teacher_{kind}.pth", tmp_path / "t.pth", source="mmdet3d")
    model = load_kd3d_model(json.loads((tmp_path / "t.pth.model.json").read_text()), tmp_path / "t.pth")
    assert model.encoder.voxelizer.order == "first"
    own = build_model(ModelConfig(name=f"centerpoint_{kind}", kwargs={"scale": "synthetic", "width": 0.25}))
    assert own.encoder.voxelizer.order == "spconv"


def test_voxelizer_order_is_checked():
    with pytest.raises(ValueError, match="order must be 'spconv' or 'first'"):
        Voxelizer(voxel_size=[1, 1, 1], point_range=[0, 0, 0, 1, 1, 1], order="hash")
