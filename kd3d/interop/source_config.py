"""Read the config an mmdet3d checkpoint carries (``meta["cfg"]`` from mmengine, ``meta["config"]``
from mmcv's 0.x runner) without executing it, and derive the import settings from it.

The text is mmengine's ``pretty_text``: assignments of literals, ``dict(...)`` calls, lists,
tuples and names assigned earlier. :func:`read_config_text` evaluates exactly that subset with
:mod:`ast` (anything else -- a call other than ``dict``, an attribute, an import -- is left out
with its name in ``skipped``), so a checkpoint's config never runs code.
"""
from __future__ import annotations

import ast


class _Unsupported(Exception):
    pass


def _eval(node, env: dict):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        vals = [_eval(e, env) for e in node.elts]
        return vals if isinstance(node, ast.List) else tuple(vals)
    if isinstance(node, ast.Dict):
        return {_eval(k, env): _eval(v, env) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _eval(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else +v
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.Name) and node.id in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict" and not node.args:
        return {kw.arg: _eval(kw.value, env) for kw in node.keywords if kw.arg is not None}
    raise _Unsupported(ast.dump(node)[:60])


def read_config_text(text: str) -> tuple[dict, list[str]]:
    """(top-level name -> value, names skipped as not plain data) of a config text."""
    env, skipped = {}, []
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            try:
                env[stmt.targets[0].id] = _eval(stmt.value, env)
            except _Unsupported:
                skipped.append(stmt.targets[0].id)
    return env, skipped


def checkpoint_config(ckpt: dict) -> dict | None:
    """The config dict a checkpoint's meta carries (mmengine ``cfg`` or mmcv ``config``), or None."""
    meta = ckpt.get("meta") if isinstance(ckpt.get("meta"), dict) else {}
    text = meta.get("cfg") or meta.get("config")
    if not isinstance(text, str):
        return None
    try:
        env, _ = read_config_text(text)
    except SyntaxError:
        return None
    return env if isinstance(env.get("model"), dict) else None


def mmdet3d_import_settings(cfg: dict) -> dict:
    """From an mmdet3d CenterPoint config: {"decode": SourceDecode fields, "model_kwargs": kd3d preset
    kwargs (point range, voxel / pillar size, points per voxel, 2D layer counts), "conv_for_no_stride":
    the neck's ``use_conv_for_no_stride`` (SECONDFPN's default False when absent)}; keys the config
    does not state are left out (the defaults apply)."""
    model = cfg["model"]
    head = model.get("pts_bbox_head", {})
    coder = head.get("bbox_coder", {})
    test = (model.get("test_cfg") or cfg.get("test_cfg") or {}).get("pts", {})
    layer = (model.get("data_preprocessor", {}).get("voxel_layer") or model.get("pts_voxel_layer") or {})
    decode = {}
    for src, dst in (("max_num", "top_k"), ("score_threshold", "score_threshold")):
        if src in coder:
            decode[dst] = coder[src]
    if coder.get("post_center_range") is not None:
        decode["post_center_range"] = tuple(float(v) for v in coder["post_center_range"])
    if "nms_type" in test:
        decode["nms"] = "circle" if test["nms_type"] == "circle" else "rotated"
    for src, dst in (("min_radius", "nms_radius_sq"), ("nms_thr", "nms_iou"), ("pre_max_size", "nms_pre_max"),
                     ("post_max_size", "post_max")):
        if src in test:
            decode[dst] = tuple(test[src]) if isinstance(test[src], (list, tuple)) else test[src]
    if isinstance(layer.get("max_voxels"), (list, tuple)):
        decode["max_voxels"] = int(layer["max_voxels"][-1])
    kwargs = {}
    if "point_cloud_range" in layer:
        kwargs["point_range"] = [float(v) for v in layer["point_cloud_range"]]
    pillar = model.get("pts_voxel_encoder", {}).get("type") == "PillarFeatureNet"
    if "voxel_size" in layer:
        vs = [float(v) for v in layer["voxel_size"]]
        if pillar:
            kwargs["pillar_size"] = vs[:2]
        else:
            kwargs["voxel_size"] = vs
    if "max_num_points" in layer:
        kwargs["max_points_per_pillar" if pillar else "max_points_per_voxel"] = int(layer["max_num_points"])
    if "layer_nums" in model.get("pts_backbone", {}):
        kwargs["layer_nums"] = list(model["pts_backbone"]["layer_nums"])
    neck = model.get("pts_neck", {})
    return {"decode": decode, "model_kwargs": kwargs, "conv_for_no_stride": bool(neck.get("use_conv_for_no_stride", False))}
