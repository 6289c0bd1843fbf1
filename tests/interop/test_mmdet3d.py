"""mmdet3d CenterPoint <-> kd3d: the key table, exact round trips, and each trap on hand-built state dicts."""
from __future__ import annotations

import copy
import math
from types import SimpleNamespace

import pytest
import torch

from kd3d.interop import checkpoints as ck
from kd3d.interop import mmdet3d as mm
from kd3d.models.lidar.presets import MMDET3D_PILLAR, MMDET3D_VOXEL, centerpoint_pillar, centerpoint_voxel


def randomized(model, seed=0):
    """Random weights and BatchNorm statistics (init values make the heads nearly constant)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                r = torch.rand(t.shape, generator=g)
                t.copy_(0.5 + r if name.endswith("running_var") else (r - 0.5) * 0.6)
    return model.eval()


def voxel(**kw):
    return randomized(centerpoint_voxel(**{**MMDET3D_VOXEL, "scale": "synthetic", "width": 0.25, **kw}))


def pillar(**kw):
    return randomized(centerpoint_pillar(**{**MMDET3D_PILLAR, "scale": "synthetic", "width": 0.25, **kw}))


def points(n=400, seed=1):
    g = torch.Generator().manual_seed(seed)
    xyz = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([60.0, 60.0, 4.0])
    return torch.cat([xyz, torch.rand(n, 2, generator=g)], dim=1)


def heads(model):
    with torch.no_grad():
        out = model(SimpleNamespace(points=[points()]))
    return torch.cat([out.feats["heatmap"], out.feats["reg"]], dim=1)


def mm_file(model, **meta):
    sd, _ = mm.export_state(model)
    return {"state_dict": sd, "meta": {"mmengine_version": "0.10.7", **meta}}


def test_key_table_hand_examples():
    assert mm.mmdet3d_key("backbone.stages.1.2.0.weight") == "pts_backbone.blocks.1.6.weight"
    assert mm.mmdet3d_key("backbone.stages.0.0.1.running_var") == "pts_backbone.blocks.0.1.running_var"
    assert mm.mmdet3d_key("neck.blocks.1.0.weight") == "pts_neck.deblocks.1.0.weight"
    assert mm.mmdet3d_key("head.shared.0.weight") == "pts_bbox_head.shared_conv.conv.weight"
    assert mm.mmdet3d_key("head.shared.1.bias") == "pts_bbox_head.shared_conv.bn.bias"
    assert mm.mmdet3d_key("head.task_heads.3.offset.0.1.weight") == "pts_bbox_head.task_heads.3.reg.0.bn.weight"
    assert mm.mmdet3d_key("head.task_heads.0.z.1.bias") == "pts_bbox_head.task_heads.0.height.1.bias"
    assert mm.mmdet3d_key("head.task_heads.0.dims.0.0.weight") == "pts_bbox_head.task_heads.0.dim.0.conv.weight"
    assert mm.mmdet3d_key("head.task_heads.0.attr.1.bias") is None
    # kd3d's plain encoder: stage 1 is one conv module, later stages sequences of them
    assert mm.mmdet3d_key("encoder.sparse.stage1.0.weight") == \
        "pts_middle_encoder.encoder_layers.encoder_layer1.0.0.weight"
    assert mm.mmdet3d_key("encoder.sparse.stage3.2.1.bias") == \
        "pts_middle_encoder.encoder_layers.encoder_layer3.2.1.bias"
    # the residual encoder already carries mmdet3d's names
    assert mm.mmdet3d_key("encoder.sparse.encoder_layers.encoder_layer1.0.conv1.weight") == \
        "pts_middle_encoder.encoder_layers.encoder_layer1.0.conv1.weight"
    assert mm.mmdet3d_key("encoder.pfn.pfn_layers.0.linear.weight") == "pts_voxel_encoder.pfn_layers.0.linear.weight"
    with pytest.raises(ValueError, match="no mmdet3d CenterPoint counterpart"):
        mm.mmdet3d_key("camera.backbone.weight")


@pytest.mark.parametrize("make", [voxel, pillar, lambda: voxel(block_type="conv_module")],
                         ids=["voxel_residual", "pillar", "voxel_plain"])
def test_export_import_round_trip_is_exact(make):
    a, b = make(), make()
    torch.manual_seed(5)
    with torch.no_grad():
        for p in b.parameters():
            p.normal_()
    state, rep = mm.import_state(b, mm_file(a))
    b.load_state_dict(state, strict=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(heads(a), heads(b))
    assert rep["version"] == "1.x"


def test_export_records_spconv2_layout_on_every_sparse_conv():
    sd, skipped = mm.export_state(voxel())
    sparse = [k for k, v in sd.items() if v.ndim == 5]
    assert sparse and all(sd._metadata[k.rpartition(".")[0]] == {"version": 2} for k in sparse)
    assert skipped == []
    _, skipped = mm.export_state(voxel(with_attrs=True))
    assert skipped and all(".attr." in k for k in skipped)


def test_pillar_neck_stride1_is_transposed_and_a_naive_load_is_wrong():
    model = pillar()
    sd, _ = mm.export_state(model)
    kd = model.state_dict()["neck.blocks.1.0.weight"]  # ConvTranspose2d (in, out, 1, 1), in == out
    assert kd.shape == sd["pts_neck.deblocks.1.0.weight"].shape
    assert torch.equal(sd["pts_neck.deblocks.1.0.weight"], kd.transpose(0, 1))
    naive = pillar()
    naive.load_state_dict({k: sd[mm.mmdet3d_key(k)] for k in model.state_dict()}, strict=True)  # "succeeds"
    assert (heads(naive) - heads(model)).abs().max() > 1e-3  # float noise is < 1e-5


def test_mmcv_layout_read_from_metadata_and_missing_provenance_refused():
    a = voxel()
    sd, _ = mm.export_state(a)
    for k, v in list(sd.items()):
        if v.ndim == 5:  # an mmdet3d file written with mmcv's sparse ops: RSCK, module version 1
            sd[k] = ck.sparse_weight_from_kd3d(v, "RSCK")
            sd._metadata[k.rpartition(".")[0]] = {"version": 1}
    state, rep = mm.import_state(voxel(), {"state_dict": sd, "meta": {"mmengine_version": "0.10.7"}})
    assert rep["sparse_layouts"] == {"RSCK": sum(1 for v in sd.values() if v.ndim == 5)}
    assert all(torch.equal(state[k], v) for k, v in a.state_dict().items())
    sd._metadata = {}
    with pytest.raises(ValueError, match="--sparse-layout"):
        mm.import_state(voxel(), {"state_dict": sd, "meta": {"mmengine_version": "0.10.7"}})
    state, _ = mm.import_state(voxel(), {"state_dict": sd, "meta": {"mmengine_version": "0.10.7"}},
                               sparse_layout="RSCK")
    assert all(torch.equal(state[k], v) for k, v in a.state_dict().items())


def test_v0_head_rows_give_the_1x_boxes():
    """A 0.x head whose dims / rot final convs output constants (zero kernels, hand biases):
    0.x dims (w, l, h) = (2, 4.5, 1.5), 0.x yaw a = 0.3 -> kd3d log dims (l, w, h), yaw -a - pi/2."""
    a = 0.3
    sd, _ = mm.export_state(voxel())
    for t in range(6):
        for branch, bias in (("dim", [math.log(2.0), math.log(4.5), math.log(1.5)]), ("rot", [math.sin(a), math.cos(a)])):
            sd[f"pts_bbox_head.task_heads.{t}.{branch}.1.weight"].zero_()
            sd[f"pts_bbox_head.task_heads.{t}.{branch}.1.bias"].copy_(torch.tensor(bias))
    model = voxel()
    state, rep = mm.import_state(model, {"state_dict": sd, "meta": {"mmdet3d_version": "0.17.1"}})
    assert rep["version"] == "0.x"
    model.load_state_dict(state)
    reg = heads(model)[:, 10:]  # (B, 10 * 6, H, W) after the 10 heatmap channels
    dims = reg[:, 3:6].exp()
    yaw = torch.atan2(reg[:, 6], reg[:, 7])
    assert torch.allclose(dims[0, :, 0, 0], torch.tensor([4.5, 2.0, 1.5]), atol=1e-5)
    assert torch.allclose(yaw, torch.full_like(yaw, -a - math.pi / 2), atol=1e-5)


def test_version_detection_and_errors():
    assert mm.detect_version({"meta": {"mmdet3d_version": "0.17.1+abc"}}) == "0.x"
    assert mm.detect_version({"meta": {"mmdet3d_version": "1.4.0"}}) == "1.x"
    assert mm.detect_version({"meta": {"cfg": "model = dict()"}}) == "1.x"
    assert mm.detect_version({"state_dict": {}}) is None
    sd, _ = mm.export_state(voxel())
    with pytest.raises(ValueError, match="--mmdet3d-version"):
        mm.import_state(voxel(), {"state_dict": sd})
    extra = copy.copy(sd)  # an OrderedDict copy keeps _metadata
    extra["pts_bbox_head.task_heads.0.iou.1.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="no place in the kd3d model"):
        mm.import_state(voxel(), extra, version="1.x")
    missing = copy.copy(sd)
    del missing["pts_neck.deblocks.0.1.running_var"]
    with pytest.raises(ValueError, match="missing mmdet3d key pts_neck.deblocks.0.1.running_var"):
        mm.import_state(voxel(), missing, version="1.x")
    with pytest.raises(ValueError, match="shape"):
        mm.import_state(voxel(width=0.5), sd, version="1.x")
    with pytest.raises(ValueError, match="with_attrs=False"):
        mm.import_state(voxel(with_attrs=True), sd, version="1.x")


def test_kind_block_type_width():
    sd, _ = mm.export_state(voxel())
    assert (mm.model_kind(sd), mm.block_type(sd), mm.width_of(sd)) == ("voxel", "basicblock", 0.25)
    sd, _ = mm.export_state(voxel(block_type="conv_module"))
    assert mm.block_type(sd) == "conv_module"
    sd, _ = mm.export_state(pillar())
    assert mm.model_kind(sd) == "pillar"
