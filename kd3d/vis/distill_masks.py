"""What each distillation method weights or samples with, drawn from its ``METHODS`` descriptor.

A method's descriptor (:data:`kd3d.distill.methods.METHODS`) may carry a visualisation hook
``maps(MapContext) -> MethodMaps`` (named (H, W) maps on a :class:`~kd3d.structures.BEVGrid`,
rows y and columns x, plus keypoints / grouped points in metric LiDAR xy). This module builds the
context (from a live :class:`~kd3d.distill.distiller.Distiller`, or from a sample's GT boxes with
model-free LiDAR statistics standing in for the features), calls the hooks and hands the
result to :func:`kd3d.vis.distill.render_distill_maps`. Nothing here knows a method by name.
"""
from __future__ import annotations

import numpy as np
import torch

from kd3d.distill.methods import METHODS, MapContext, MethodMaps
from kd3d.structures import BEVGrid
from kd3d.vis.distill import render_distill_maps


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def collect_method_maps(contexts: dict[str, MapContext]) -> dict:
    """Call the hook of every method in ``contexts`` (name -> its MapContext) that has one.

    Returns ``{"masks": {name: (H, W) numpy}, "overlays": [(title, keypoints, points, groups)]}``;
    every map is checked to be finite and of the context grid's shape (an error names the method)."""
    masks, overlays = {}, []
    for name, ctx in contexts.items():
        hook = METHODS[name].maps
        if hook is None:
            continue
        out = hook(ctx)
        if isinstance(out, dict):
            out = MethodMaps(out)
        if not isinstance(out, MethodMaps):
            raise TypeError(f"method {name!r}: maps hook must return MethodMaps or a dict, got {type(out).__name__}")
        for key, m in out.maps.items():
            a = _np(m)
            if a.shape != tuple(ctx.grid.shape):
                raise ValueError(f"method {name!r}: map {key!r} has shape {a.shape}, expected {tuple(ctx.grid.shape)} "
                                 "(the MapContext grid)")
            if a.dtype != bool and not np.isfinite(a.astype(np.float64)).all():
                raise ValueError(f"method {name!r}: map {key!r} has non-finite values")
            masks[key] = a
        if out.keypoints is not None or out.points is not None:
            what = out.overlay or " + ".join(w for w, v in (("keypoints", out.keypoints), ("points", out.points))
                                             if v is not None)
            overlays.append((f"{name}: {what}", None if out.keypoints is None else _np(out.keypoints),
                             None if out.points is None else _np(out.points),
                             None if out.point_groups is None else _np(out.point_groups)))
    return {"masks": masks, "overlays": overlays}


def lidar_bev_features(points, grid: BEVGrid) -> np.ndarray:
    """A model-free LiDAR BEV "feature" (4, H, W): log point count, max z, mean z, mean intensity
    per cell (0 in empty cells), each channel divided by its standard deviation over the occupied
    cells (so no channel dominates channel means and attention). Used by
    :func:`sample_distill_maps` when no model is at hand."""
    p = np.asarray(points, dtype=np.float64)
    cr = np.floor(grid.xy_to_cell(p[:, :2])).astype(np.int64)
    ok = (cr[:, 0] >= 0) & (cr[:, 0] < grid.nx) & (cr[:, 1] >= 0) & (cr[:, 1] < grid.ny)
    flat = cr[ok, 1] * grid.nx + cr[ok, 0]
    n = grid.nx * grid.ny
    cnt = np.bincount(flat, minlength=n).astype(np.float64)
    zsum = np.bincount(flat, weights=p[ok, 2], minlength=n)
    isum = np.bincount(flat, weights=p[ok, 3] if p.shape[1] > 3 else np.zeros(ok.sum()), minlength=n)
    zmax = np.full(n, -np.inf)
    np.maximum.at(zmax, flat, p[ok, 2])
    has = cnt > 0
    feat = np.zeros((4, n))
    feat[0] = np.log1p(cnt)
    feat[1, has] = zmax[has]
    feat[2, has] = zsum[has] / cnt[has]
    feat[3, has] = isum[has] / cnt[has]
    if has.sum() > 1:
        feat /= np.maximum(feat[:, has].std(axis=1, keepdims=True), 1e-6)
    return feat.reshape(4, grid.ny, grid.nx)


def sample_distill_maps(sample, *, half_range: float = 51.2, cell: float = 0.8, mode: str = "pca",
                        tile: int = 320, methods=None) -> np.ndarray:
    """Every registered method's maps for one Sample's GT boxes, without a model: "teacher" =
    LiDAR BEV statistics of all sweeps, "student" = the same of the key frame only
    (:func:`lidar_bev_features`); the hooks use their losses' default settings. ``methods``:
    names to draw (default all of ``METHODS`` with a hook). Returns (H, W, 3) uint8."""
    from kd3d.structures.sample import collate

    grid = BEVGrid(-half_range, -half_range, half_range, half_range, cell, cell)
    teacher = torch.from_numpy(lidar_bev_features(sample.points, grid)).float()
    student = torch.from_numpy(lidar_bev_features(sample.points[: sample.num_key_points], grid)).float()
    batch = collate([sample])
    names = [m for m in (methods or METHODS) if METHODS[m].maps is not None]
    ctx = MapContext(batch=batch, batch_index=0, grid=grid, teacher_feat=teacher, student_feat=student)
    got = collect_method_maps({m: ctx for m in names})
    return render_distill_maps(teacher, student, got["masks"], overlays=got["overlays"], grid=grid, mode=mode,
                               tile=tile)


# ----------------------------------------------------------------------------- a live Distiller
def _fallback_grid(model, cells: int = 128):
    """A BEV grid over ``model.point_range`` (segmenters have no ``bev_grid``), or None."""
    pr = getattr(model, "point_range", None)
    if pr is None:
        return None
    return BEVGrid(pr[0], pr[1], pr[3], pr[4], (pr[3] - pr[0]) / cells, (pr[4] - pr[1]) / cells)


@torch.no_grad()
def distiller_maps(distiller, batch, *, term: str | None = None, batch_index: int = 0) -> dict:
    """Run a :class:`kd3d.distill.distiller.Distiller` on ``batch`` (eval mode, no grad) and
    collect what :func:`kd3d.vis.distill.render_distill_maps` draws for sample ``batch_index``.

    The shown pair is the (adapted) student and teacher feature of ``term`` (a term name), by
    default the first term whose two features are dense (B, C, H, W) maps; a distiller without
    one (PVD, PointDistiller on voxels) shows the LiDAR points' BEV statistics instead. The maps
    come from the hook of every method among the terms (``DistillTerm.method``, set by
    :func:`kd3d.distill.methods.build_terms`), on the shown map's grid. Returns the keyword
    arguments of ``render_distill_maps`` plus ``term`` (None without a dense pair).
    """
    from kd3d.distill.adapters import grid_for_map

    was_training = distiller.training
    distiller.eval()
    try:
        s_out = distiller.student(batch)
        t_out = distiller.teacher_forward(batch)
    finally:
        distiller.train(was_training)

    def inputs(t):
        return distiller.term_inputs(t, s_out, t_out)

    def dense(t):
        return all(isinstance(k, str) and torch.is_tensor(o.feats.get(k)) and o.feats[k].dim() == 4
                   for k, o in ((t.student_key, s_out), (t.teacher_key, t_out)))

    names = [t.name for t in distiller.terms]
    candidates = [t for t in distiller.terms if dense(t)]
    if term is not None:
        candidates = [t for t in candidates if t.name == term]
        if not candidates:
            raise ValueError(f"distiller_maps: no dense BEV term named {term!r}; terms: {names}")
    b = batch_index
    chosen = candidates[0] if candidates else None
    s = t = None
    if chosen is not None:
        s, t = inputs(chosen)
        s, t = s[b].float().cpu(), t[b].float().cpu()
    base = distiller.teacher_grid if distiller.teacher_grid is not None else distiller.student_grid
    grid = grid_for_map(base, t.shape) if base is not None and t is not None else base
    if grid is None:
        grid = _fallback_grid(distiller.teacher if distiller.teacher is not None else distiller.student)
    dctx = distiller.context(batch, s_out, t_out)
    methods: dict[str, list] = {}
    for x in distiller.terms:
        if x.method is not None and x.method in METHODS:
            methods.setdefault(x.method, []).append(x)
    got = {"masks": {}, "overlays": []}
    if grid is not None:
        got = collect_method_maps({m: MapContext(batch=batch, batch_index=b, grid=grid, teacher_feat=t, student_feat=s,
                                                 student_out=s_out, teacher_out=t_out, terms=tuple(ts), inputs=inputs,
                                                 distill_ctx=dctx) for m, ts in methods.items()})
    background = None
    if chosen is None and grid is not None:
        background = torch.from_numpy(lidar_bev_features(_np(batch.points[b]), grid)).float()
    hm_t, hm_s = t_out.feats.get("heatmap"), s_out.feats.get("heatmap")
    return {"teacher_feat": t, "student_feat": s, "masks": got["masks"], "overlays": got["overlays"],
            "background": background, "grid": grid, "term": None if chosen is None else chosen.name,
            "teacher_heatmap": None if hm_t is None else hm_t[b].float().cpu(),
            "student_heatmap": None if hm_s is None else hm_s[b].float().cpu()}


def render_distiller(distiller, batch, *, term: str | None = None, batch_index: int = 0, mode: str = "pca",
                     tile: int = 256) -> np.ndarray:
    """Picture of a live Distiller on one batch sample (see :func:`distiller_maps`): (H, W, 3) uint8."""
    kw = distiller_maps(distiller, batch, term=term, batch_index=batch_index)
    kw.pop("term")
    teacher, student, masks = kw.pop("teacher_feat"), kw.pop("student_feat"), kw.pop("masks")
    return render_distill_maps(teacher, student, masks, mode=mode, tile=tile, **kw)
