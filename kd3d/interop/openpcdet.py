"""OpenPCDet CenterPoint checkpoints (``VoxelResBackBone8x`` voxel / ``PillarVFE`` pillar) -> kd3d.

OpenPCDet's CUDA extensions do not build on a CPU machine, so these conventions are taken from
its source (``pcdet/models``) and checked on hand-built state dicts:

* keys: ``vfe`` / ``backbone_3d`` (encoder), ``backbone_2d.blocks`` (SECOND stages, a
  ZeroPad2d + unpadded conv = kd3d's padded conv), ``backbone_2d.deblocks`` (neck; stride 1 is
  a ``ConvTranspose2d`` unless ``USE_CONV_FOR_NO_STRIDE``), ``dense_head.shared_conv``,
  ``dense_head.heads_list.{t}.{center,center_z,dim,rot,vel,hm}``;
* OpenPCDet groups the residual encoder differently from mmdet3d (the strided conv opens the
  next stage) but registers the same layers in the same order: modules are paired in order per
  kind (:func:`kd3d.interop.mapping.pair_modules`) inside each section;
* biases before BatchNorm (``SparseBasicBlock`` convs, ``USE_BIAS_BEFORE_NORM`` head convs)
  are folded into the BN running mean;
* the ``rot`` branch regresses (cos, sin); kd3d's (sin, cos): the final conv's rows swapped;
* sparse kernels: OpenPCDet records no spconv version, and its own loader guesses by shape
  (wrong for in == out convs); kd3d takes the layout the checkpoint's asymmetric convs prove
  (:func:`~kd3d.interop.checkpoints.infer_sparse_layout`) or ``sparse_layout``;
* boxes: gravity-centre z (as kd3d), strict score threshold, rotated NMS
  (:data:`~kd3d.interop.decode.OPENPCDET_NUSC_DECODE`).
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn

from kd3d.interop.checkpoints import conv1x1_to_deconv, infer_sparse_layout, permute_rows, sparse_weight_to_kd3d
from kd3d.interop.mapping import fold_conv_bias_before_norm, is_stride1_deconv, modules_of, pair_modules

HEAD_NAMES = {"offset": "center", "z": "center_z", "dims": "dim", "rot": "rot", "vel": "vel", "heatmap": "hm"}


def model_kind(sd: dict) -> str:
    """"voxel" or "pillar" from an OpenPCDet state dict's keys."""
    if any(k.startswith("backbone_3d.") for k in sd):
        return "voxel"
    if any(k.startswith("vfe.pfn_layers") for k in sd):
        return "pillar"
    raise ValueError("not an OpenPCDet CenterPoint state dict (no backbone_3d / vfe.pfn_layers keys)")


def sections(model: nn.Module, sd: dict) -> list[tuple[str, str]]:
    """(OpenPCDet prefix, kd3d prefix) of every section of a CenterPoint."""
    out = [("backbone_3d." if model_kind(sd) == "voxel" else "vfe.", "encoder."),
           ("backbone_2d.blocks.", "backbone."), ("backbone_2d.deblocks.", "neck."),
           ("dense_head.shared_conv.", "head.shared.")]
    for t, branches in enumerate(model.head.task_heads):
        for name in branches:
            if name not in HEAD_NAMES:
                raise ValueError(f"kd3d head branch {name!r} has no OpenPCDet counterpart; build the model with "
                                 "with_attrs=False")
            out.append((f"dense_head.heads_list.{t}.{HEAD_NAMES[name]}.", f"head.task_heads.{t}.{name}."))
    return out


def import_state(model: nn.Module, ckpt: dict, *, sparse_layout: str | None = None, conv_for_no_stride: bool = False,
                 source: str = "<checkpoint>") -> tuple[dict, dict]:
    """kd3d state dict for ``model`` (a built LiDAR CenterPoint, same architecture) from an
    OpenPCDet checkpoint dict (``{"model_state": ...}`` or the state dict). conv_for_no_stride:
    the source's ``USE_CONV_FOR_NO_STRIDE`` (default False, OpenPCDet's default). Returns
    (state dict, report); ValueError when a key of either side is left unmatched."""
    sd = OrderedDict(ckpt.get("model_state", ckpt))
    sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith("global_step"))
    n_bias = sum(1 for k in sd if k.endswith(".bias"))
    sd = fold_conv_bias_before_norm(sd, "", keep_bias=lambda m: False)
    folded = n_bias - sum(1 for k in sd if k.endswith(".bias"))
    dst = model.state_dict()
    pairs, src_params, dst_params = [], {}, {}  # module path -> {param name: tensor}
    for sp, dp in sections(model, sd):
        src_mods, dst_mods = modules_of(sd, sp), modules_of(dst, dp)
        if not src_mods:
            raise ValueError(f"{source}: no OpenPCDet keys under {sp!r}: not a CenterPoint of this layout")
        pairs += pair_modules(src_mods, dst_mods, f"{source} [{sp} -> {dp}]")
        src_params.update(src_mods)
        dst_params.update(dst_mods)
    # sparse layout: given, or proven by the asymmetric kernels
    convs = [(f"{s}.weight", tuple(sd[f"{s}.weight"].shape), dst[f"{d}.weight"].shape[1:4],
              dst[f"{d}.weight"].shape[4], dst[f"{d}.weight"].shape[0])
             for s, d in pairs if f"{d}.weight" in dst and dst[f"{d}.weight"].ndim == 5]
    layout = sparse_layout or (infer_sparse_layout(convs) if convs else None)
    final_rot = {f"head.task_heads.{t}.rot.{len(b['rot']) - 1}" for t, b in enumerate(model.head.task_heads)}
    out, used = OrderedDict(), set()
    for s, d in pairs:
        src_p, dst_p = src_params[s], dst_params[d]
        if set(src_p) != set(dst_p):
            raise ValueError(f"{source}: {s} has {sorted(src_p)}, kd3d {d} has {sorted(dst_p)}")
        mod = model.get_submodule(d)
        for name, t in src_p.items():
            t = t.detach().clone()
            if name == "weight" and t.ndim == 5:
                t = sparse_weight_to_kd3d(t, layout)
            elif name == "weight" and conv_for_no_stride and is_stride1_deconv(mod):
                t = conv1x1_to_deconv(t)
            if d in final_rot:
                t = permute_rows(t, [1, 0])  # (cos, sin) -> (sin, cos)
            if tuple(t.shape) != tuple(dst_p[name].shape):
                raise ValueError(f"{source}: {s}.{name} {tuple(t.shape)} does not fit kd3d {d}.{name} "
                                 f"{tuple(dst_p[name].shape)}")
            out[f"{d}.{name}"] = t.to(dst_p[name].dtype)
            used.add(f"{s}.{name}")
    extra = sorted(set(sd) - used)
    if extra:
        raise ValueError(f"{source}: {len(extra)} OpenPCDet keys have no place in the kd3d model, e.g. {extra[:5]}")
    missing = sorted(set(dst) - set(out))
    if missing:
        raise ValueError(f"{source}: kd3d keys not filled: {missing[:5]}")
    return OrderedDict((k, out[k]) for k in dst), {"sparse_layout": layout, "folded_biases": folded, "keys": len(out)}
