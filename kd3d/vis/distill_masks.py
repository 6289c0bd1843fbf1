"""The masks, weights, keypoints and sampled points of kd3d's distillers, computed with the
methods' own functions (``kd3d.distill``), as numpy maps for :func:`kd3d.vis.distill.render_distill_maps`.

Maps are (H, W) on a :class:`~kd3d.structures.BEVGrid` (rows y, columns x); boxes (M, 9)
``Boxes3D`` layout in the LiDAR frame; points (N, >=3) LiDAR frame.
"""
from __future__ import annotations

import numpy as np
import torch

from kd3d.structures import BEVGrid, Boxes3D
from kd3d.vis.distill import render_distill_maps


def _boxes(boxes) -> torch.Tensor:
    data = boxes.data if isinstance(boxes, Boxes3D) else np.asarray(boxes, dtype=np.float64).reshape(-1, 9)
    return torch.as_tensor(np.nan_to_num(data), dtype=torch.float64)


def _t(x, dims: int) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x).float()
    return t[None] if t.dim() == dims - 1 else t


def bevdistill_masks(gt_boxes, grid: BEVGrid, min_overlap: float = 0.1) -> dict[str, np.ndarray]:
    """BEVDistill's dense-term weight: the class-agnostic CenterPoint Gaussian at the GT centres."""
    from kd3d.distill.bev_targets import draw_gaussian_heatmap

    return {"bevdistill/gaussian": draw_gaussian_heatmap(_boxes(gt_boxes), grid, min_overlap=min_overlap).numpy()}


def distillbev_masks(gt_boxes, grid: BEVGrid, teacher_feat=None, student_feat=None, teacher_heatmap=None,
                     tau: float = 0.5) -> dict[str, np.ndarray]:
    """DistillBEV's regions (0 background, 1 GT foreground, 2 teacher false positives), the
    foreground scale ``max(sqrt(A_cell / A_box), 1/N_bg)`` and, given the features (C, H, W),
    the attention ``A = (P_T + P_S) / 2`` (student attention on its own map when the shapes match)."""
    from kd3d.distill.methods.distillbev import distillbev_regions, spatial_attention

    score = None
    if teacher_heatmap is not None:
        score = torch.sigmoid(_t(teacher_heatmap, 3).amax(dim=0) if _t(teacher_heatmap, 3).dim() == 3
                              else _t(teacher_heatmap, 3)[0].amax(dim=0))
    reg = distillbev_regions(_boxes(gt_boxes), grid, score)
    regions = reg["fg"].long() + 2 * reg["fp"].long()
    out = {"distillbev/regions": regions.numpy().astype(np.float64), "distillbev/fg_scale": reg["fg_scale"].numpy()}
    if teacher_feat is not None:
        pt = spatial_attention(_t(teacher_feat, 4), tau)[0]
        att = pt
        if student_feat is not None and _t(student_feat, 4).shape[-2:] == pt.shape:
            att = 0.5 * (pt + spatial_attention(_t(student_feat, 4), tau)[0])
        out["distillbev/attention"] = att.numpy()
    return out


def unidistill_keypoints(gt_boxes) -> np.ndarray:
    """UniDistill's nine BEV keypoints per box: (M * 9, 2) metric xy."""
    from kd3d.distill.bev_targets import box_keypoints

    return box_keypoints(_boxes(gt_boxes)).reshape(-1, 2).numpy()


def pointdistiller_cells(teacher_feat, grid: BEVGrid, num_items: int = 64) -> np.ndarray:
    """PointDistiller's selection on a dense BEV map: the ``num_items`` cells of largest
    teacher channel-max importance, as (n, 2) metric xy of the cell centres."""
    from kd3d.distill.methods.pointdistiller import select_top_n

    t = _t(teacher_feat, 4)[0]
    idx = select_top_n(t.amax(dim=0).reshape(-1), num_items)
    rows, cols = idx // t.shape[-1], idx % t.shape[-1]
    return grid.cell_to_xy(np.stack([cols.numpy() + 0.5, rows.numpy() + 0.5], axis=1))


def pvd_supervoxels(points, labels=None, num_supervoxels: int = 8, points_per_supervoxel: int = 64,
                    seed: int = 0, **sv_kwargs):
    """PVD's difficulty-aware supervoxel sampling on a cloud.

    Returns ``(xyz (n, 3), group (n,))``: up to ``points_per_supervoxel`` points of each of the
    ``num_supervoxels`` sampled supervoxels and the supervoxel each belongs to (0..K-1)."""
    from kd3d.distill.methods.pvd import supervoxel_ids, supervoxel_probabilities

    xyz = torch.as_tensor(np.asarray(points)[:, :3], dtype=torch.float64)
    lab = torch.zeros(len(xyz), dtype=torch.long) if labels is None else torch.as_tensor(np.asarray(labels), dtype=torch.long)
    sv = supervoxel_ids(xyz, **sv_kwargs)
    ids, probs = supervoxel_probabilities(sv, lab, xyz)
    g = torch.Generator().manual_seed(int(seed))
    k = min(int(num_supervoxels), len(ids))
    chosen = ids[torch.multinomial(probs.float(), k, replacement=False, generator=g)]
    sel, grp = [], []
    for j, s in enumerate(chosen.tolist()):
        members = torch.nonzero(sv == s).flatten()
        members = members[torch.randperm(len(members), generator=g)[:points_per_supervoxel]]
        sel.append(members)
        grp.append(torch.full((len(members),), j))
    idx = torch.cat(sel) if sel else torch.zeros(0, dtype=torch.long)
    return xyz[idx].numpy(), (torch.cat(grp) if grp else torch.zeros(0, dtype=torch.long)).numpy()


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
                        tile: int = 320) -> np.ndarray:
    """The distillers' masks for one Sample's GT boxes, without a model: "teacher" = LiDAR BEV
    statistics of all sweeps, "student" = the same of the key frame only
    (:func:`lidar_bev_features`). Tiles: both features, BEVDistill Gaussian, DistillBEV
    regions / scale / attention, UniDistill keypoints, PointDistiller cells and PVD supervoxels
    over the teacher. Returns (H, W, 3) uint8."""
    grid = BEVGrid(-half_range, -half_range, half_range, half_range, cell, cell)
    teacher = lidar_bev_features(sample.points, grid)
    student = lidar_bev_features(sample.points[: sample.num_key_points], grid)
    masks = {**bevdistill_masks(sample.gt_boxes, grid),
             **distillbev_masks(sample.gt_boxes, grid, teacher, student)}
    kps = unidistill_keypoints(sample.gt_boxes)
    key = sample.points[: sample.num_key_points]
    sv_xyz, sv_group = pvd_supervoxels(key, sample.points_label, rho_max=half_range)
    cells = pointdistiller_cells(teacher, grid)
    points = np.concatenate([cells, sv_xyz[:, :2]])
    groups = np.concatenate([np.full(len(cells), -1), sv_group])
    return render_distill_maps(teacher, student, masks, keypoints=kps, points=points, point_groups=groups,
                               grid=grid, mode=mode, tile=tile)


# ----------------------------------------------------------------------------- a live Distiller
def _loss_kind(loss) -> str:
    """Which method a term's loss belongs to: the module that defines its class."""
    mod = type(loss).__module__.rsplit(".", 1)[-1]
    return mod if mod in ("bevdistill", "distillbev", "unidistill", "pointdistiller", "pvd") else "generic"


@torch.no_grad()
def distiller_maps(distiller, batch, *, term: str | None = None, batch_index: int = 0) -> dict:
    """Run a :class:`kd3d.distill.distiller.Distiller` on ``batch`` (eval mode, no grad) and
    collect what :func:`kd3d.vis.distill.render_distill_maps` draws for sample ``batch_index``.

    The shown pair is the (adapted) student and teacher feature of ``term`` (a term name), by
    default the first term whose two features are dense (B, C, H, W) maps. Masks come from every
    method among the distiller's terms, on the teacher map's grid: BEVDistill Gaussian,
    DistillBEV regions / fg scale / attention, UniDistill keypoints, PointDistiller cells.
    Returns the keyword arguments of ``render_distill_maps`` (plus ``term``).
    """
    from kd3d.distill.adapters import grid_for_map

    was_training = distiller.training
    distiller.eval()
    try:
        s_out = distiller.student(batch)
        t_out = distiller.teacher_forward(batch)
    finally:
        distiller.train(was_training)
    dense = [t for t in distiller.terms if isinstance(t.student_key, str) and isinstance(t.teacher_key, str)
             and torch.is_tensor(s_out.feats.get(t.student_key)) and s_out.feats[t.student_key].dim() == 4
             and torch.is_tensor(t_out.feats.get(t.teacher_key)) and t_out.feats[t.teacher_key].dim() == 4]
    if term is not None:
        dense = [t for t in dense if t.name == term]
        if not dense:
            raise ValueError(f"distiller_maps: no dense BEV term named {term!r}; terms: {[t.name for t in distiller.terms]}")
    if not dense:
        raise ValueError("distiller_maps: the distiller has no term on dense (B, C, H, W) maps "
                         f"(terms: {[t.name for t in distiller.terms]}); point terms (PVD) are drawn with "
                         "pvd_supervoxels over lidar_bev_features")
    chosen = dense[0]
    s = s_out.feats[chosen.student_key]
    if chosen.adapter is not None:
        s = distiller.adapters[chosen.adapter](s)
    t = t_out.feats[chosen.teacher_key]
    b = batch_index
    grid = grid_for_map(distiller.teacher_grid, t.shape) if distiller.teacher_grid is not None else None
    boxes = batch.gt_boxes[b].detach().cpu().double()
    hm_t, hm_s = t_out.feats.get("heatmap"), s_out.feats.get("heatmap")
    masks, keypoints, points = {}, None, None
    kinds: dict = {}
    for x in distiller.terms:
        kinds.setdefault(_loss_kind(x.loss), x.loss)
    if grid is not None:
        if "bevdistill" in kinds:
            masks.update(bevdistill_masks(boxes, grid, getattr(kinds["bevdistill"], "min_overlap", 0.1)))
        if "distillbev" in kinds:
            score_map = hm_t[b] if hm_t is not None and hm_t.shape[-2:] == t.shape[-2:] else None
            masks.update(distillbev_masks(boxes, grid, t[b], s[b], score_map,
                                          tau=getattr(kinds["distillbev"], "attn_tau", 0.5)))
        if "unidistill" in kinds:
            keypoints = unidistill_keypoints(boxes)
        if "pointdistiller" in kinds:
            points = pointdistiller_cells(t[b], grid, getattr(kinds["pointdistiller"], "num_items", 64))
    return {"teacher_feat": t[b].float().cpu(), "student_feat": s[b].float().cpu(), "masks": masks,
            "keypoints": keypoints, "points": points, "grid": grid, "term": chosen.name,
            "teacher_heatmap": None if hm_t is None else hm_t[b].float().cpu(),
            "student_heatmap": None if hm_s is None else hm_s[b].float().cpu()}


def render_distiller(distiller, batch, *, term: str | None = None, batch_index: int = 0, mode: str = "pca",
                     tile: int = 256) -> np.ndarray:
    """Picture of a live Distiller on one batch sample (see :func:`distiller_maps`): (H, W, 3) uint8."""
    kw = distiller_maps(distiller, batch, term=term, batch_index=batch_index)
    kw.pop("term")
    teacher, student, masks = kw.pop("teacher_feat"), kw.pop("student_feat"), kw.pop("masks")
    return render_distill_maps(teacher, student, masks, mode=mode, tile=tile, **kw)
