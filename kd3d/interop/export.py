"""Whole-file conversions behind ``kd3d convert``.

* :func:`import_teacher`: an mmdet3d (1.x / 0.x) or OpenPCDet CenterPoint checkpoint -> a kd3d
  checkpoint (``{"model": state, "meta": ...}`` + sha256 sidecar) and the model config to use
  it with (``<out>.model.json``: ``DistillConfig.teacher_model`` / ``teacher_kwargs``; the
  model decodes like its source, :mod:`kd3d.interop.decode`).
* :func:`export_student`: a kd3d LiDAR CenterPoint (voxel or pillar, any width) -> an mmdet3d
  1.x checkpoint (``{"state_dict", "meta"}``, loads with ``strict=True``) and the mmdet3d config
  (Python text) that builds the same network (:func:`mmdet3d_config_text`).
"""
from __future__ import annotations

import dataclasses
import json
import pprint
from pathlib import Path

from torch import nn

from kd3d.interop import mmdet3d as mm
from kd3d.interop import openpcdet as pcdet
from kd3d.interop.decode import OPENPCDET_NUSC_DECODE, SourceDecode, imported_centerpoint
from kd3d.interop.mapping import load_foreign
from kd3d.interop.source_config import checkpoint_config, mmdet3d_import_settings
from kd3d.models.checkpoint import atomic_save

IMPORTED_MODEL = "kd3d.interop.decode:imported_centerpoint"
SOURCES = ("mmdet3d", "openpcdet")


def teacher_model_config(source: str, sd: dict, *, width: float | None = None, overrides: dict | None = None,
                         settings: dict | None = None) -> dict:
    """{"name": IMPORTED_MODEL, "kwargs": {...}} of the kd3d network matching a source state dict:
    voxel (residual encoder, z 41) or pillar (11-feature pillar net), nuScenes scale, width from
    the head's shared conv, the source's decode settings (defaults of its CenterPoint configs,
    updated by ``settings`` read from the checkpoint's own config,
    :func:`~kd3d.interop.source_config.mmdet3d_import_settings`); ``overrides`` update the kwargs last."""
    from kd3d.models.lidar.presets import MMDET3D_PILLAR, MMDET3D_VOXEL

    kind = mm.model_kind(sd) if source == "mmdet3d" else pcdet.model_kind(sd)
    if source == "mmdet3d":
        w = width or mm.width_of(sd)
        decode = SourceDecode() if kind == "voxel" else SourceDecode(max_voxels=40000)
    else:
        shared = sd.get("dense_head.shared_conv.0.weight")
        if shared is None:
            raise ValueError("no dense_head.shared_conv.0.weight: not an OpenPCDet CenterPoint state dict")
        w = width or shared.shape[0] / 64.0
        decode = OPENPCDET_NUSC_DECODE
    kwargs = dict(MMDET3D_VOXEL if kind == "voxel" else MMDET3D_PILLAR)
    if source == "mmdet3d" and kind == "voxel" and mm.block_type(sd) == "conv_module":
        kwargs["block_type"] = "conv_module"
    if settings:
        decode = dataclasses.replace(decode, **settings["decode"])
        kwargs.update(settings["model_kwargs"])
    kwargs.update({"width": w, "preset": f"centerpoint_{kind}", "decode": decode.to_dict()})
    kwargs.update(overrides or {})
    return {"name": IMPORTED_MODEL, "kwargs": kwargs}


def import_teacher(path, out, *, source: str, version: str | None = None, sparse_layout: str | None = None,
                   conv_for_no_stride: bool | None = None, width: float | None = None,
                   overrides: dict | None = None) -> dict:
    """Convert ``path`` (a ``source`` checkpoint) to the kd3d checkpoint ``out`` and write
    ``<out>.model.json``. Returns a report (model config, layout found, keys, files)."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    ckpt = load_foreign(path)
    sd = ckpt.get("state_dict", ckpt.get("model_state", ckpt))
    src_cfg = checkpoint_config(ckpt) if source == "mmdet3d" else None
    settings = mmdet3d_import_settings(src_cfg) if src_cfg else None
    cfg = teacher_model_config(source, sd, width=width, overrides=overrides, settings=settings)
    if conv_for_no_stride is None and settings:
        conv_for_no_stride = settings["conv_for_no_stride"]
    model = imported_centerpoint(**cfg["kwargs"])
    if source == "mmdet3d":
        state, rep = mm.import_state(model, ckpt, version=version, sparse_layout=sparse_layout,
                                     conv_for_no_stride=True if conv_for_no_stride is None else conv_for_no_stride,
                                     source=str(path))
    else:
        state, rep = pcdet.import_state(model, ckpt, sparse_layout=sparse_layout,
                                        conv_for_no_stride=bool(conv_for_no_stride), source=str(path))
    model.load_state_dict(state, strict=True)
    out = Path(out)
    rep["settings_from"] = "the checkpoint's config" if settings else "the source's CenterPoint defaults"
    meta = {"source": source, "source_file": str(path), "report": rep, "model_config": cfg}
    atomic_save({"model": state, "meta": meta}, out)
    cfg_path = out.with_name(out.name + ".model.json")
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    return {**rep, "model_config": cfg, "checkpoint": str(out), "model_json": str(cfg_path)}


# --------------------------------------------------------------------------- export
def _backbone_cfg(backbone) -> dict:
    nums = [len(stage) - 1 for stage in backbone.stages]
    strides, prev = [], 1
    for s in backbone.strides:
        strides.append(s // prev)
        prev = s
    return {"layer_nums": nums, "layer_strides": strides, "out_channels": list(backbone.out_channels_list)}


def _neck_strides(neck) -> list:
    ups = []
    for blk in neck.blocks:
        conv = blk[0]
        k = int(conv.stride[0])
        ups.append(k if isinstance(conv, nn.ConvTranspose2d) else 1.0 / k)
    return ups


def mmdet3d_config_text(model: nn.Module, *, class_names=None, name: str = "kd3d student") -> str:
    """mmdet3d 1.x config (Python source) whose ``model`` builds the same network as ``model``
    (a kd3d LiDAR CenterPoint), with mmdet3d's CenterPoint test settings (top-500 per task, circle
    NMS with the head's radii squared, post-centre range, score > threshold)."""
    enc, head = model.encoder, model.head
    vz = enc.voxelizer
    pr = [float(v) for v in vz.point_range]
    bb = _backbone_cfg(model.backbone)
    bn2d = {"type": "BN", "eps": 1e-3, "momentum": 0.01}
    hidden = len(head.task_heads[0]["heatmap"])
    if hasattr(enc, "sparse"):
        sp = enc.sparse
        if getattr(enc, "block_type", "conv_module") == "basicblock":
            from kd3d.models.backbones.sparse_resnet import CENTERPOINT_CHANNELS, CENTERPOINT_PADDINGS
            from kd3d.models.backbones.sparse_encoder import scale_channels

            w = sp.conv_input[0].out_channels / 16
            chans = tuple(tuple(scale_channels(c, w) for c in st) for st in CENTERPOINT_CHANNELS)
            pads, block = CENTERPOINT_PADDINGS, "basicblock"
        else:
            c = sp.channels
            chans = ((c[0],), (c[1],) * 3, (c[2],) * 3, (c[3],) * 3)
            pads, block = ((1,), (1, 1, 1), (1, 1, 1), ((0, 1, 1), 1, 1)), "conv_module"
        voxel_size = list(vz.voxel_size)
        vfe = {"type": "HardSimpleVFE", "num_features": vz.num_point_features}
        middle = {"type": "SparseEncoder", "in_channels": vz.num_point_features,
                  "sparse_shape": list(sp.spatial_shape), "base_channels": int(sp.conv_input[0].out_channels),
                  "output_channels": sp.out_channels, "order": ("conv", "norm", "act"),
                  "encoder_channels": chans, "encoder_paddings": pads, "block_type": block}
    else:
        if not hasattr(enc.pfn, "pfn_layers"):
            raise ValueError("kd3d's 10-feature pillar net has no mmdet3d equivalent: export pillar models built "
                             "with pfn='mmdet3d' (11 features, mmdet3d's padded slots)")
        voxel_size = list(vz.voxel_size)
        vfe = {"type": "PillarFeatureNet", "in_channels": vz.num_point_features, "feat_channels": [enc.bev_channels],
               "with_distance": False, "voxel_size": tuple(voxel_size), "point_cloud_range": pr,
               "norm_cfg": {"type": "BN1d", "eps": 1e-3, "momentum": 0.01}, "legacy": False}
        middle = {"type": "PointPillarsScatter", "in_channels": enc.bev_channels,
                  "output_shape": list(enc.bev_grid.shape)}
    factor = int(round(head.grid.dx / voxel_size[0]))
    names = list(class_names or [c for t in head.tasks for c in t])
    tasks = [{"num_class": len(t), "class_names": list(t)} for t in head.tasks]
    post_range = [pr[0] - 10, pr[1] - 10, -10.0, pr[3] + 10, pr[4] + 10, 10.0]
    model_cfg = {
        "type": "CenterPoint",
        "data_preprocessor": {"type": "Det3DDataPreprocessor", "voxel": True, "voxel_layer": {
            "max_num_points": vz.max_points_per_voxel, "point_cloud_range": pr, "voxel_size": voxel_size,
            "max_voxels": (vz.max_voxels, vz.max_voxels)}},
        "pts_voxel_encoder": vfe, "pts_middle_encoder": middle,
        "pts_backbone": {"type": "SECOND", "in_channels": enc.bev_channels, **bb, "norm_cfg": bn2d,
                         "conv_cfg": {"type": "Conv2d", "bias": False}},
        "pts_neck": {"type": "SECONDFPN", "in_channels": list(model.backbone.out_channels_list),
                     "out_channels": [int(b[0].out_channels) for b in model.neck.blocks],
                     "upsample_strides": _neck_strides(model.neck), "norm_cfg": bn2d,
                     "upsample_cfg": {"type": "deconv", "bias": False}, "use_conv_for_no_stride": True},
        "pts_bbox_head": {
            "type": "CenterHead", "in_channels": head.in_channels, "tasks": tasks,
            "common_heads": {"reg": (2, hidden), "height": (1, hidden), "dim": (3, hidden), "rot": (2, hidden),
                             "vel": (2, hidden)},
            "num_heatmap_convs": hidden, "share_conv_channel": head.share_channels,
            "bbox_coder": {"type": "CenterPointBBoxCoder", "post_center_range": post_range, "max_num": 500,
                           "score_threshold": head.score_threshold, "out_size_factor": factor,
                           "voxel_size": voxel_size[:2], "pc_range": pr[:2], "code_size": 9},
            "separate_head": {"type": "SeparateHead", "init_bias": -2.19, "final_kernel": 3,
                              "head_conv": int(head.task_heads[0]["heatmap"][0][0].out_channels) if hidden > 1 else 64},
            "norm_bbox": True},
        "test_cfg": {"pts": {
            "post_center_limit_range": post_range, "max_per_img": 500, "max_pool_nms": False,
            "min_radius": [r * r for r in head.nms_radius], "score_threshold": head.score_threshold,
            "out_size_factor": factor, "voxel_size": voxel_size[:2], "pc_range": pr[:2],
            "nms_type": "circle", "pre_max_size": 1000, "post_max_size": head.post_max, "nms_thr": 0.2}},
    }
    return (f"# mmdet3d 1.x config written by `kd3d convert export` for {name}.\n"
            "# Builds the same network as the kd3d model; load the checkpoint with strict=True.\n"
            f"class_names = {names!r}\n"
            f"point_cloud_range = {pr!r}\n"
            f"voxel_size = {voxel_size!r}\n"
            f"model = {pprint.pformat(model_cfg, width=100, sort_dicts=False)}\n")


def export_student(model: nn.Module, out_dir, *, name: str = "student") -> dict:
    """Write ``<out_dir>/<name>_mmdet3d.pth`` (``{"state_dict", "meta"}``) and
    ``<out_dir>/<name>_mmdet3d_config.py`` for a kd3d LiDAR CenterPoint; returns a report."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    text = mmdet3d_config_text(model, name=name)
    sd, skipped = mm.export_state(model)
    ckpt_path = out_dir / f"{name}_mmdet3d.pth"
    cfg_path = out_dir / f"{name}_mmdet3d_config.py"
    meta = {"exported_by": "kd3d convert export", "config": cfg_path.name,
            "dataset_meta": {"classes": [c for t in model.head.tasks for c in t]}}
    atomic_save({"state_dict": sd, "meta": meta}, ckpt_path)
    cfg_path.write_text(text)
    return {"checkpoint": str(ckpt_path), "config": str(cfg_path), "keys": len(sd), "left_out": skipped}


def load_kd3d_model(model_config: dict, checkpoint) -> nn.Module:
    """A kd3d model built from ``{"name", "kwargs"}`` with the weights of a kd3d checkpoint
    (student weights first for a distillation checkpoint), loaded strictly."""
    from kd3d.models.build import ModelConfig, build_model
    from kd3d.models.checkpoint import load_weights

    model = build_model(ModelConfig(name=model_config["name"], kwargs=dict(model_config.get("kwargs", {}))))
    load_weights(model, checkpoint, prefer_student=True, strict=True)
    return model

