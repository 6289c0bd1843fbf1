"""MMDetection3D (1.x and 0.x) CenterPoint checkpoints <-> kd3d LiDAR CenterPoint weights.

One key rule table (:func:`mmdet3d_key`) names, for every kd3d state-dict key of a
:class:`~kd3d.models.lidar.detector.LidarCenterPoint`, the mmdet3d key holding the same
tensor (``pts_middle_encoder`` / ``pts_voxel_encoder``, ``pts_backbone.blocks``,
``pts_neck.deblocks``, ``pts_bbox_head``). Import and export both walk that table, so they are
inverses by construction; the traps are explicit transforms (:mod:`kd3d.interop.checkpoints`):

* sparse kernels: layout from the state dict's ``_metadata`` (version 2 -> spconv 2 KRSC,
  otherwise mmcv's RSCK), or ``sparse_layout`` when the file records none; exports record
  version 2 on every sparse conv so mmdet3d's loader does not permute them;
* neck blocks of upsample stride 1 are ``Conv2d`` in mmdet3d when ``use_conv_for_no_stride``
  (every CenterPoint config) and ``ConvTranspose2d`` in kd3d: transposed both ways;
* 0.x heads (``version="0.x"``): dims rows (w, l, h) -> (l, w, h) and yaw rows remapped
  (``-yaw - pi/2``) in the final conv of the ``dim`` / ``rot`` branches;
* class order: mmdet3d's labels index the tasks flattened (:data:`MMDET3D_NUSC_CLASSES`);
  kd3d's heads keep the same task grouping and output labels by name (devkit order).
"""
from __future__ import annotations

import re
from collections import OrderedDict

from torch import nn

from kd3d.interop.checkpoints import (
    conv1x1_to_deconv, deconv_to_conv1x1, mmdet3d_sparse_layout, mmdet3d_v0_rot_rows, permute_rows,
    sparse_weight_from_kd3d, sparse_weight_to_kd3d,
)
from kd3d.interop.mapping import is_stride1_deconv

MMDET3D_NUSC_CLASSES = ("car", "truck", "construction_vehicle", "bus", "trailer", "barrier", "motorcycle",
                        "bicycle", "pedestrian", "traffic_cone")
# kd3d CenterHead branch -> mmdet3d SeparateHead branch
HEAD_NAMES = {"offset": "reg", "z": "height", "dims": "dim", "rot": "rot", "vel": "vel", "heatmap": "heatmap"}
_HEAD_FROM_MM = {v: k for k, v in HEAD_NAMES.items()}


def mmdet3d_key(key: str) -> str | None:
    """The mmdet3d key of kd3d state-dict ``key`` (None: no mmdet3d counterpart, e.g. the
    attribute branch); raises ValueError for a key outside the CenterPoint layout."""
    m = re.fullmatch(r"encoder\.sparse\.stage1\.([01])\.(\w+)", key)  # kd3d's plain stage 1 is one block
    if m:
        return f"pts_middle_encoder.encoder_layers.encoder_layer1.0.{m[1]}.{m[2]}"
    m = re.fullmatch(r"encoder\.sparse\.stage(\d)\.(.+)", key)
    if m:
        return f"pts_middle_encoder.encoder_layers.encoder_layer{m[1]}.{m[2]}"
    m = re.fullmatch(r"encoder\.sparse\.(.+)", key)  # conv_input, conv_out, residual encoder_layers (mmdet3d names)
    if m:
        return f"pts_middle_encoder.{m[1]}"
    m = re.fullmatch(r"encoder\.pfn\.(pfn_layers\..+)", key)
    if m:
        return f"pts_voxel_encoder.{m[1]}"
    m = re.fullmatch(r"backbone\.stages\.(\d+)\.(\d+)\.([01])\.(\w+)", key)
    if m:
        return f"pts_backbone.blocks.{m[1]}.{3 * int(m[2]) + int(m[3])}.{m[4]}"
    m = re.fullmatch(r"neck\.blocks\.(\d+)\.([01])\.(\w+)", key)
    if m:
        return f"pts_neck.deblocks.{m[1]}.{m[2]}.{m[3]}"
    m = re.fullmatch(r"head\.shared\.([01])\.(\w+)", key)
    if m:
        return f"pts_bbox_head.shared_conv.{'conv' if m[1] == '0' else 'bn'}.{m[2]}"
    m = re.fullmatch(r"head\.task_heads\.(\d+)\.(\w+)\.(\d+)\.(?:([01])\.)?(\w+)", key)
    if m:
        if m[2] not in HEAD_NAMES:
            return None
        inner = "" if m[4] is None else ("conv." if m[4] == "0" else "bn.")
        return f"pts_bbox_head.task_heads.{m[1]}.{HEAD_NAMES[m[2]]}.{m[3]}.{inner}{m[5]}"
    raise ValueError(f"kd3d key {key!r} has no mmdet3d CenterPoint counterpart (not a LiDAR CenterPoint?)")


def _module_of(model: nn.Module, key: str) -> nn.Module:
    return model.get_submodule(key.rpartition(".")[0])


def _final_rows(key: str) -> str | None:
    """The branch name when ``key`` is the weight/bias of a head branch's final conv, else None."""
    m = re.fullmatch(r"head\.task_heads\.(\d+)\.(\w+)\.(\d+)\.(weight|bias)", key)
    return m[2] if m else None


def detect_version(ckpt: dict) -> str | None:
    """"1.x" / "0.x" from an mmdet3d checkpoint's ``meta`` (mmengine writes ``mmengine_version``
    or a ``cfg``; mmcv's runner in 0.x writes ``mmdet3d_version``), None when not recorded."""
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    v = meta.get("mmdet3d_version")
    if isinstance(v, str) and v[:1].isdigit():
        return "0.x" if v.startswith("0.") else "1.x"
    if "mmengine_version" in meta or "cfg" in meta:
        return "1.x"
    return None


def import_state(model: nn.Module, ckpt: dict, *, version: str | None = None, sparse_layout: str | None = None,
                 conv_for_no_stride: bool = True, source: str = "<checkpoint>") -> tuple[dict, dict]:
    """kd3d state dict for ``model`` (a built LiDAR CenterPoint of the same architecture) from an
    mmdet3d checkpoint dict (``{"state_dict": ...}`` or the state dict itself).

    version: "1.x" | "0.x" (default: :func:`detect_version`, error when unknown); sparse_layout:
    KRSC/RSKC/RSCK for files whose ``_metadata`` records none; conv_for_no_stride: the source
    neck's ``use_conv_for_no_stride``. Returns (state dict, report dict). Every mmdet3d key must
    be used and every kd3d key found: ValueError otherwise."""
    sd = ckpt.get("state_dict", ckpt)
    metadata = getattr(sd, "_metadata", None)
    version = version or detect_version(ckpt)
    if version not in ("1.x", "0.x"):
        raise ValueError(f"{source}: mmdet3d version not recorded in the checkpoint's meta; pass --mmdet3d-version "
                         "1.x or 0.x")
    out, used, layouts = OrderedDict(), set(), {}
    for key, ref in model.state_dict().items():
        mk = mmdet3d_key(key)
        if mk is None:
            raise ValueError(f"{source}: kd3d key {key} has no mmdet3d counterpart; build the kd3d model without it "
                             "(with_attrs=False)")
        if mk not in sd:
            raise ValueError(f"{source}: missing mmdet3d key {mk} (for kd3d {key}): not the same architecture")
        t = sd[mk].detach().clone()
        used.add(mk)
        if ref.ndim == 5 and key.endswith(".weight"):
            lay = sparse_layout or mmdet3d_sparse_layout(metadata, mk.rpartition(".")[0])
            if lay is None:
                raise ValueError(f"{source}: no _metadata version for sparse conv {mk.rpartition('.')[0]}; "
                                 "pass --sparse-layout KRSC|RSKC|RSCK")
            layouts[lay] = layouts.get(lay, 0) + 1
            t = sparse_weight_to_kd3d(t, lay)
        elif key.endswith(".weight") and is_stride1_deconv(_module_of(model, key)) and conv_for_no_stride:
            t = conv1x1_to_deconv(t)
        branch = _final_rows(key)
        if version == "0.x" and branch == "dims":
            t = permute_rows(t, [1, 0, 2])
        elif version == "0.x" and branch == "rot":
            t = mmdet3d_v0_rot_rows(t)
        if tuple(t.shape) != tuple(ref.shape):
            raise ValueError(f"{source}: {mk} has shape {tuple(sd[mk].shape)} ({tuple(t.shape)} in kd3d's layout), "
                             f"kd3d {key} expects {tuple(ref.shape)}")
        out[key] = t.to(ref.dtype)
    extra = sorted(set(sd) - used)
    if extra:
        raise ValueError(f"{source}: {len(extra)} mmdet3d keys have no place in the kd3d model, e.g. {extra[:5]}")
    return out, {"version": version, "sparse_layouts": layouts, "keys": len(out)}


def export_state(model: nn.Module, *, conv_for_no_stride: bool = True) -> tuple["OrderedDict", list[str]]:
    """mmdet3d 1.x state dict (with ``_metadata``: version 2 on every sparse conv, so mmdet3d
    with spconv 2 loads the KRSC kernels as they are) of a kd3d LiDAR CenterPoint; returns it
    and the kd3d keys left out (the attribute branch, which mmdet3d's CenterHead lacks)."""
    out, skipped = OrderedDict(), []
    meta = OrderedDict()
    for key, t in model.state_dict().items():
        mk = mmdet3d_key(key)
        if mk is None:
            skipped.append(key)
            continue
        t = t.detach().clone()
        mod_path = mk.rpartition(".")[0]
        if t.ndim == 5 and key.endswith(".weight"):
            t = sparse_weight_from_kd3d(t, "KRSC")
            meta[mod_path] = {"version": 2}
        elif key.endswith(".weight") and is_stride1_deconv(_module_of(model, key)) and conv_for_no_stride:
            t = deconv_to_conv1x1(t)
        if isinstance(_module_of(model, key), nn.modules.batchnorm._BatchNorm):
            meta[mod_path] = {"version": 2}
        out[mk] = t
    out._metadata = meta
    return out, skipped


def model_kind(sd: dict) -> str:
    """"voxel" or "pillar" from an mmdet3d CenterPoint state dict's keys."""
    if any(k.startswith("pts_middle_encoder.") for k in sd):
        return "voxel"
    if any(k.startswith("pts_voxel_encoder.pfn_layers") for k in sd):
        return "pillar"
    raise ValueError("not an mmdet3d CenterPoint state dict (no pts_middle_encoder / pts_voxel_encoder.pfn_layers keys)")


def block_type(sd: dict) -> str:
    """"basicblock" (residual, CenterPoint) or "conv_module" (kd3d's plain encoder) of a voxel model."""
    return "basicblock" if any(".conv1.weight" in k for k in sd if k.startswith("pts_middle_encoder.")) else "conv_module"


def width_of(sd: dict) -> float:
    """Channel multiplier of a CenterPoint state dict: the head's shared conv width / 64."""
    w = sd.get("pts_bbox_head.shared_conv.conv.weight")
    if w is None:
        raise ValueError("no pts_bbox_head.shared_conv.conv.weight: not an mmdet3d CenterPoint state dict")
    return w.shape[0] / 64.0
