"""OpenPCDet CenterPoint -> kd3d on hand-built state dicts. OpenPCDet's CUDA extensions do not build
here, so its conventions come from its source (pcdet/models/backbones_3d/spconv_backbone.py
VoxelResBackBone8x + SparseBasicBlock, backbones_2d/base_bev_backbone.py, dense_heads/center_head.py):
the key names below, biases before BatchNorm, (cos, sin) rotation rows, spconv 1.x kernels."""
from __future__ import annotations

import re
from collections import OrderedDict
from types import SimpleNamespace

import pytest
import torch

from kd3d.interop import checkpoints as ck
from kd3d.interop import openpcdet as pcdet
from kd3d.models.lidar.presets import MMDET3D_PILLAR, MMDET3D_VOXEL, centerpoint_pillar, centerpoint_voxel

PCDET_HEADS = {"offset": "center", "z": "center_z", "dims": "dim", "rot": "rot", "vel": "vel", "heatmap": "hm"}


def model(kind="voxel"):
    torch.manual_seed(0)
    if kind == "pillar":
        m = centerpoint_pillar(**{**MMDET3D_PILLAR, "scale": "synthetic", "width": 0.25})
    else:
        m = centerpoint_voxel(**{**MMDET3D_VOXEL, "scale": "synthetic", "width": 0.25})
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                r = torch.rand(t.shape, generator=g)
                t.copy_(0.5 + r if name.endswith("running_var") or (name.endswith("weight") and t.ndim == 1)
                        else (r - 0.5) * (0.4 if t.ndim == 1 else (24.0 / (t.numel() / t.shape[0])) ** 0.5))
    return m.eval()


def pcdet_key(key: str) -> str:
    """OpenPCDet's name of a kd3d key (from OpenPCDet's module tree)."""
    m = re.fullmatch(r"encoder\.pfn\.(pfn_layers\.\d+\.(?:linear|norm)\.\w+)", key)
    if m:  # PillarVFE: PFNLayer(linear, norm), registered in that order
        return f"vfe.{m[1]}"
    m = re.fullmatch(r"encoder\.sparse\.(conv_input|conv_out)\.(.+)", key)
    if m:
        return f"backbone_3d.{m[1]}.{m[2]}"
    m = re.fullmatch(r"encoder\.sparse\.encoder_layers\.encoder_layer(\d)\.(\d)\.(.+)", key)
    if m:
        i, j = int(m[1]), int(m[2])
        if j == 2:  # mmdet3d's strided conv ending stage i opens OpenPCDet's conv{i+1}
            return f"backbone_3d.conv{i + 1}.0.{m[3]}"
        return f"backbone_3d.conv{i}.{j + (1 if i >= 2 else 0)}.{m[3]}"
    m = re.fullmatch(r"backbone\.stages\.(\d+)\.(\d+)\.([01])\.(\w+)", key)
    if m:  # ZeroPad2d at 0, then (Conv2d, BN, ReLU) triples
        return f"backbone_2d.blocks.{m[1]}.{1 + 3 * int(m[2]) + int(m[3])}.{m[4]}"
    m = re.fullmatch(r"neck\.blocks\.(\d+)\.(.+)", key)
    if m:
        return f"backbone_2d.deblocks.{m[1]}.{m[2]}"
    m = re.fullmatch(r"head\.shared\.(.+)", key)
    if m:
        return f"dense_head.shared_conv.{m[1]}"
    m = re.fullmatch(r"head\.task_heads\.(\d+)\.(\w+)\.(.+)", key)
    return f"dense_head.heads_list.{m[1]}.{PCDET_HEADS[m[2]]}.{m[3]}"


def pcdet_state(m, layout="RSCK"):
    """The OpenPCDet checkpoint of the same network: spconv kernels in ``layout``, a bias on every
    conv OpenPCDet puts one on (basic-block convs, head convs before BN) with the BN running mean
    moved by it (same function), rot final rows as (cos, sin)."""
    g = torch.Generator().manual_seed(2)
    out = OrderedDict()
    for key, t in m.state_dict().items():
        t = t.clone()
        if t.ndim == 5:
            t = ck.sparse_weight_from_kd3d(t, layout)
        if re.search(r"\.rot\.1\.(weight|bias)$", key):
            t = t[[1, 0]]
        out[pcdet_key(key)] = t
    biased = [k for k in list(out) if re.search(r"(\.conv[12]\.weight|shared_conv\.0\.weight|\.\d+\.0\.0\.weight)$", k)
              and k.startswith(("backbone_3d.conv", "dense_head"))]
    assert biased
    for k in biased:
        conv = k[: -len(".weight")]
        parent, last = conv.rsplit(".", 1)
        bn = f"{parent}.bn{last[-1]}" if last in ("conv1", "conv2") else f"{parent}.1"
        b = torch.rand(out[f"{bn}.running_mean"].shape, generator=g) - 0.5
        out[f"{conv}.bias"] = b
        out[f"{bn}.running_mean"] = out[f"{bn}.running_mean"] + b
    # OpenPCDet registers a conv's bias right after its weight
    return OrderedDict(sorted(out.items(), key=lambda kv: list(out).index(kv[0].replace(".bias", ".weight"))
                              if kv[0].endswith(".bias") and kv[0].replace(".bias", ".weight") in out
                              else list(out).index(kv[0])))


def heads(m):
    g = torch.Generator().manual_seed(3)
    xyz = (torch.rand(500, 3, generator=g) - 0.5) * torch.tensor([60.0, 60.0, 4.0])
    with torch.no_grad():
        out = m(SimpleNamespace(points=[torch.cat([xyz, torch.rand(500, 2, generator=g)], 1)]))
    return torch.cat([out.feats["heatmap"], out.feats["reg"]], 1)


@pytest.mark.parametrize("layout", ["RSCK", "KRSC", "RSKC"])
def test_openpcdet_import_folds_biases_swaps_rot_and_reads_the_layout(layout):
    src = model()
    sd = pcdet_state(src, layout)
    dst = model()
    with torch.no_grad():
        for p in dst.parameters():
            p.zero_()
    state, rep = pcdet.import_state(dst, {"model_state": sd, "version": "pcdet+0.6.0"})
    dst.load_state_dict(state, strict=True)
    assert rep["sparse_layout"] == layout  # proven by conv_input (5 -> 4 channels) and the strided convs
    assert rep["folded_biases"] > 0
    for k, v in src.state_dict().items():
        assert torch.allclose(dst.state_dict()[k].float(), v.float(), atol=1e-6), k
    assert torch.allclose(heads(dst), heads(src), atol=1e-4)


def test_openpcdet_rot_rows_and_extra_keys():
    src = model()
    sd = pcdet_state(src)
    dst = model()
    dst.load_state_dict(pcdet.import_state(dst, sd)[0])
    rot = dst.state_dict()["head.task_heads.0.rot.1.bias"]
    assert torch.equal(rot, sd["dense_head.heads_list.0.rot.1.bias"][[1, 0]])  # (cos, sin) -> (sin, cos)
    extra = OrderedDict(sd)
    extra["dense_head.heads_list.0.hm.1.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match="dense_head.heads_list.0.hm.1"):
        pcdet.import_state(model(), extra)


def test_openpcdet_ambiguous_layout_needs_the_flag():
    convs = [("backbone_3d.conv1.0.conv1.weight", (3, 3, 3, 4, 4), (3, 3, 3), 4, 4)]
    with pytest.raises(ValueError, match="--sparse-layout"):
        ck.infer_sparse_layout(convs)
    assert pcdet.model_kind({"backbone_3d.conv_input.0.weight": 0}) == "voxel"
    assert pcdet.model_kind({"vfe.pfn_layers.0.linear.weight": 0}) == "pillar"
    with pytest.raises(ValueError, match="not an OpenPCDet"):
        pcdet.model_kind({"x.weight": 0})


def test_openpcdet_pillar_import():
    src = model("pillar")
    sd = pcdet_state(src)
    # OpenPCDet registers PFNLayer's linear before its norm (kd3d: norm first, as mmdet3d)
    lin = [k for k in sd if k.startswith("vfe.")]
    sd = OrderedDict([(k, sd[k]) for k in sorted(lin, key=lambda k: ".norm." in k)] +
                     [(k, v) for k, v in sd.items() if not k.startswith("vfe.")])
    dst = model("pillar")
    state, rep = pcdet.import_state(dst, {"model_state": sd})
    dst.load_state_dict(state, strict=True)
    assert rep["sparse_layout"] is None
    assert torch.allclose(heads(dst), heads(src), atol=1e-4)
