"""Distillation maps: teacher and student BEV features side by side with the masks, weights,
keypoints and sampled points each distiller applies.

Every map is a BEV array on a :class:`~kd3d.structures.BEVGrid` (rows along y, columns along
x). By default the tiles are shown in the orientation of the scene pictures
(:func:`kd3d.vis.bev.render_bev`: +x up, +y left), so a map and a scene picture overlay;
``orient='raw'`` shows the array as stored (row 0 at the top).

Inputs may be numpy arrays or torch tensors; a leading batch dimension is indexed with
``batch_index``.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from kd3d.vis import _raster as R
from kd3d.vis.colors import colormap


def _np(x, batch_index: int, ndim: int, name: str) -> np.ndarray:
    """Tensor/array -> float64 numpy with ``ndim`` dims (dropping a leading batch dim)."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == ndim + 1:
        a = a[batch_index]
    if a.ndim != ndim:
        raise ValueError(f"render_distill_maps: {name} must have {ndim} dims (or {ndim + 1} with batch), got {a.shape}")
    return a


def orient_bev(arr: np.ndarray, orient: str = "bev") -> np.ndarray:
    """(H, W, ...) grid array (rows y, cols x) -> display array. ``bev``: +x up, +y left
    (transpose, then flip both axes); ``raw``: unchanged."""
    if orient == "raw":
        return arr
    if orient != "bev":
        raise ValueError(f"orient must be 'bev' or 'raw', got {orient!r}")
    return np.swapaxes(arr, 0, 1)[::-1, ::-1]


def feature_to_rgb(feat, mode: str = "mean", basis: np.ndarray | None = None, batch_index: int = 0,
                   return_basis: bool = False):
    """(C, H, W) feature map -> (H, W, 3) uint8 (grid orientation).

    ``mean``: channel mean of |F| through ``viridis`` (1st..99th percentile);
    ``pca``: the three leading principal components of the C-dim cell vectors as RGB, each
    scaled by its 1st..99th percentile. ``basis`` (C, 3) reuses components (e.g. the teacher's
    for a same-width student, so equal features get equal colours).
    """
    f = _np(feat, batch_index, 3, "feat")
    c, h, w = f.shape
    if mode == "mean":
        m = np.abs(f).mean(0).reshape(-1)
        lo, hi = np.percentile(m, [1, 99])
        out = colormap(m, lo, hi if hi > lo else lo + 1e-6).reshape(h, w, 3)
        return (out, None) if return_basis else out
    if mode != "pca":
        raise ValueError(f"feature_to_rgb: mode must be 'mean' or 'pca', got {mode!r}")
    x = f.reshape(c, -1).T  # (HW, C)
    x = x - x.mean(0, keepdims=True)
    if basis is None:
        _, _, vt = np.linalg.svd(x, full_matrices=False)
        basis = np.zeros((c, 3))
        k = min(3, vt.shape[0])
        basis[:, :k] = vt[:k].T
        # fix the sign of each component so the largest |loading| is positive (stable colours)
        for j in range(k):
            if basis[np.argmax(np.abs(basis[:, j])), j] < 0:
                basis[:, j] *= -1
    elif basis.shape != (c, 3):
        raise ValueError(f"feature_to_rgb: basis must be ({c}, 3), got {basis.shape}")
    y = x @ basis
    lo, hi = np.percentile(y, 1, axis=0), np.percentile(y, 99, axis=0)
    y = np.clip((y - lo) / np.maximum(hi - lo, 1e-12), 0, 1)
    out = (y * 255).round().astype(np.uint8).reshape(h, w, 3)
    return (out, basis) if return_basis else out


def heatmap_to_rgb(heatmap, logits: bool = False, cmap: str = "inferno", batch_index: int = 0) -> np.ndarray:
    """(K, H, W) class heatmaps (or (H, W)) -> (H, W, 3) uint8: the max over classes in [0, 1]
    (``sigmoid`` first when ``logits``) through ``cmap`` with the fixed range [0, 1]."""
    h = _np(heatmap, batch_index, 3, "heatmap") if np.ndim(heatmap) >= 3 else _np(heatmap, 0, 2, "heatmap")
    if h.ndim == 3:
        h = h.max(0)
    if logits:
        h = 1.0 / (1.0 + np.exp(-h))
    return colormap(h.reshape(-1), 0.0, 1.0, cmap=cmap).reshape(*h.shape, 3)


def mask_to_rgb(mask, cmap: str = "magma") -> tuple[np.ndarray, str]:
    """(H, W) bool / integer-region / float weight map -> ((H, W, 3) uint8, range text).

    bool: white where True; float: ``cmap`` over its own [min, max] (the text says the range);
    a positive map spanning more than three decades (e.g. DistillBEV's softmax attention) is
    shown as log10 (the text says ``log``)."""
    m = _np(mask, 0, 2, "mask") if not isinstance(mask, np.ndarray) or mask.dtype != bool else mask
    if isinstance(m, np.ndarray) and m.dtype == bool:
        rgb = np.where(m[..., None], np.uint8(255), np.uint8(0)).repeat(3, axis=2).astype(np.uint8)
        return rgb, f"{int(m.sum())} cells"
    lo, hi = float(np.min(m)), float(np.max(m))
    if lo > 0 and hi / lo > 1e3:
        rgb = colormap(np.log10(m).reshape(-1), np.log10(lo), np.log10(hi), cmap=cmap).reshape(*m.shape, 3)
        return rgb, f"log [{lo:.2g}, {hi:.2g}]"
    rgb = colormap(m.reshape(-1), lo, hi if hi > lo else lo + 1e-12, cmap=cmap).reshape(*m.shape, 3)
    return rgb, f"[{lo:.3g}, {hi:.3g}]"


def _to_display_px(xy: np.ndarray, grid, shape: tuple[int, int], orient: str) -> np.ndarray:
    """(N, 2) metric xy (with ``grid``) or (col, row) cells (without) -> tile pixels (before
    scaling) in the displayed orientation of an (H, W) map."""
    h, w = shape
    cr = grid.xy_to_cell(xy) if grid is not None else np.asarray(xy, dtype=np.float64)[:, :2]
    if orient == "raw":
        return cr
    # display (u, v) of orient_bev: u = (H - row), v = (W - col) for continuous coordinates
    return np.stack([h - cr[:, 1], w - cr[:, 0]], axis=1)


TITLE_PX = 18  # title strip above each tile
BAR_PX = 26  # colour bar (or legend) strip below each tile
GAP_PX = 6  # horizontal gap between tiles


def tile_origin(index: int, tile: int, ncols: int) -> tuple[int, int]:
    """(row, column) pixel of the top-left corner of tile ``index``'s map in the picture."""
    r, c = divmod(index, ncols)
    return r * (tile + TITLE_PX + BAR_PX) + TITLE_PX, c * (tile + GAP_PX)


def _scalar(m: np.ndarray, cmap: str = "magma"):
    """(H, W) bool/int/float map -> (rgb, colour-bar spec) as :func:`mask_to_rgb` colours it."""
    if m.dtype == bool:
        return mask_to_rgb(m, cmap)[0], ("bool", int(m.sum()))
    m = m.astype(np.float64)
    lo, hi = float(np.min(m)), float(np.max(m))
    rgb, text = mask_to_rgb(m, cmap)
    if text.startswith("log"):
        return rgb, (cmap, np.log10(lo), np.log10(hi), True)
    return rgb, (cmap, lo, hi if hi > lo else lo + 1e-12, False)


def _fmt(v: float, log: bool) -> str:
    return f"1e{v:.1f}" if log else f"{v:.3g}"


def _draw_bar(draw, pil, spec, x0: int, y0: int, width: int) -> None:
    """Colour bar / legend of one tile in the strip starting at pixel row ``y0``."""
    if spec is None:
        return
    txt = (210, 210, 210)
    if spec[0] == "text":
        R.draw_text(draw, (x0 + 3, y0 + 6), _fit(draw, spec[1], width - 6, 11), txt, size=11, bg=None)
        return
    if spec[0] == "bool":
        draw.rectangle([x0 + 3, y0 + 5, x0 + 13, y0 + 15], fill=(255, 255, 255), outline=(120, 120, 120))
        R.draw_text(draw, (x0 + 17, y0 + 4), f"in mask ({spec[1]} cells)", txt, size=11, bg=None)
        draw.rectangle([x0 + width // 2 + 3, y0 + 5, x0 + width // 2 + 13, y0 + 15], fill=(0, 0, 0),
                       outline=(120, 120, 120))
        R.draw_text(draw, (x0 + width // 2 + 17, y0 + 4), "outside", txt, size=11, bg=None)
        return
    cmap, lo, hi, log = spec
    w = max(width - 6, 2)
    strip = colormap(np.linspace(0.0, 1.0, w), 0.0, 1.0, cmap=cmap)
    draw.rectangle([x0 + 2, y0 + 2, x0 + 4 + w, y0 + 11], outline=(120, 120, 120))
    pil.paste(R.to_image(np.repeat(strip[None], 8, axis=0)), (x0 + 3, y0 + 3))
    f = R.font(11)
    lo_t, hi_t = _fmt(lo, log), _fmt(hi, log)
    R.draw_text(draw, (x0 + 3, y0 + 13), lo_t, txt, size=11, bg=None)
    hw = draw.textbbox((0, 0), hi_t, font=f)[2]
    R.draw_text(draw, (x0 + 3 + w - hw, y0 + 13), hi_t, txt, size=11, bg=None)
    if log:
        R.draw_text(draw, (x0 + w // 2 - 12, y0 + 13), "log10", txt, size=11, bg=None)


def _fit(draw, text: str, width: int, size: int = 12) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    f = R.font(size)
    if draw.textbbox((0, 0), text, font=f)[2] <= width:
        return text
    while text and draw.textbbox((0, 0), text + "...", font=f)[2] > width:
        text = text[:-1]
    return text + "..."


def render_distill_maps(teacher_feat, student_feat, masks: dict | None = None, keypoints=None, points=None, *,
                        point_groups=None, teacher_heatmap=None, student_heatmap=None, heatmap_logits: bool = True,
                        grid=None, mode: str = "pca", orient: str = "bev", tile: int = 256, ncols: int = 4,
                        batch_index: int = 0, overlays: list | None = None, background=None) -> np.ndarray:
    """One picture: teacher feature | student feature | |T - S| | heatmaps | masks | overlays,
    each tile with a title above and a colour bar (or legend) below.

    ``teacher_feat`` (C_t, H, W), ``student_feat`` (C_s, H', W') BEV features ([B, ...] allowed);
    either may be None (point-only distillers: then ``background`` (C, H, W), e.g.
    :func:`kd3d.vis.distill_masks.lidar_bev_features`, is shown and carries the overlays).
    ``masks``: name -> (H'', W'') bool/int/float map (e.g. a method's ``MethodMaps.maps``), each
    resized (nearest) to the tile. ``overlays``: list of ``(title, keypoints, points,
    point_groups)``; ``keypoints``/``points``/``point_groups`` given directly form one more.
    Keypoints (M, 2) and points (N, >=2) are metric LiDAR xy when ``grid`` (the BEVGrid of the
    teacher map) is given, else ``(col, row)`` cells; keypoints are drawn as white crosses, points
    as dots coloured by their group (negative groups cyan). Tiles are laid out row-major,
    ``ncols`` per row; :func:`tile_origin` gives each map's pixel origin. Returns
    (rows * (tile + TITLE_PX + BAR_PX), ncols * tile + (ncols - 1) * GAP_PX, 3) uint8.
    """
    masks = dict(masks or {})
    overlays = list(overlays or [])
    if keypoints is not None or points is not None:
        overlays.append(("teacher + " + " + ".join(n for n, v in (("keypoints", keypoints), ("points", points))
                                                   if v is not None), keypoints, points, point_groups))
    tiles: list[tuple[str, np.ndarray, object]] = []
    base = None
    if teacher_feat is not None:
        t = _np(teacher_feat, batch_index, 3, "teacher_feat")
        s = _np(student_feat, batch_index, 3, "student_feat") if student_feat is not None else None
        t_rgb, basis = feature_to_rgb(t, mode, return_basis=True)
        tiles.append((f"teacher {mode} (C={t.shape[0]})", t_rgb, _feature_bar(t, mode)))
        if s is not None:
            same = mode == "pca" and t.shape[0] == s.shape[0]
            tiles.append((f"student {mode} (C={s.shape[0]})", feature_to_rgb(s, mode, basis=basis if same else None),
                          _feature_bar(s, mode, shared=same)))
            if t.shape == s.shape:
                tiles.append(("|T - S| channel mean", *_scalar(np.abs(t - s).mean(0))))
        base, base_shape, base_name = t_rgb, t.shape[1:], "teacher"
    elif background is not None:
        bg = _np(background, batch_index, 3, "background")
        b_rgb = feature_to_rgb(bg, "mean")
        tiles.append(("LiDAR points (BEV density)", b_rgb, _feature_bar(bg, "mean")))
        base, base_shape, base_name = b_rgb, bg.shape[1:], "points"
    elif overlays:
        raise ValueError("render_distill_maps: overlays need teacher_feat or background to draw on")
    for who, hm in (("teacher", teacher_heatmap), ("student", student_heatmap)):
        if hm is not None:
            tiles.append((f"{who} heatmap (max class)", heatmap_to_rgb(hm, heatmap_logits, batch_index=batch_index),
                          ("inferno", 0.0, 1.0, False)))
    for name, m in masks.items():
        m = m.detach().cpu().numpy() if hasattr(m, "detach") else np.asarray(m)
        if m.ndim == 3 and m.shape[0] == 1:
            m = m[0]
        if m.ndim != 2:
            raise ValueError(f"render_distill_maps: mask {name!r} must be (H, W), got {m.shape}")
        tiles.append((name, *_scalar(m)))
    overlay_tiles = {}
    for title, kps, pts, groups in overlays:
        dim = (base.astype(np.float64) * 0.45).astype(np.uint8)
        overlay_tiles[id(dim)] = (kps, pts, groups)
        legend = "   ".join(w for w, v in (("x: keypoint", kps), ("dot: point" + (" (colour: group)" if groups is not None
                                                                               else ""), pts)) if v is not None)
        tiles.append((title, dim, ("text", legend)))
    if not tiles:
        raise ValueError("render_distill_maps: nothing to draw (no features, background, masks or heatmaps)")
    width = ncols * tile + (ncols - 1) * GAP_PX
    rows = (len(tiles) + ncols - 1) // ncols
    canvas = np.full((rows * (tile + TITLE_PX + BAR_PX), width, 3), 30, dtype=np.uint8)
    placed = []
    for i, (name, rgb, bar) in enumerate(tiles):
        disp = orient_bev(rgb, orient)
        scale = tile / max(disp.shape[:2])
        size = (max(1, round(disp.shape[1] * scale)), max(1, round(disp.shape[0] * scale)))
        pil = R.to_image(disp).resize(size, Image.NEAREST)
        if id(rgb) in overlay_tiles:
            kps, pts, groups = overlay_tiles[id(rgb)]
            _draw_overlay(pil, kps, pts, groups, grid, base_shape, orient, scale)
        arr = np.asarray(pil)
        y0, x0 = tile_origin(i, tile, ncols)
        canvas[y0:y0 + arr.shape[0], x0:x0 + arr.shape[1]] = arr
        placed.append((name, bar, y0, x0))
    pil = R.to_image(canvas)
    draw = ImageDraw.Draw(pil)
    for name, bar, y0, x0 in placed:
        R.draw_text(draw, (x0 + 2, y0 - TITLE_PX + 3), _fit(draw, name, tile - 4), (240, 240, 240), size=12, bg=None)
        _draw_bar(draw, pil, bar, x0, y0 + tile, tile)
    return np.asarray(pil).copy()


def _feature_bar(f: np.ndarray, mode: str, shared: bool = False):
    if mode == "pca":
        return ("text", "RGB = 3 leading PCs" + (" (teacher's)" if shared else "") + ", 1-99 %")
    m = np.abs(f).mean(0)
    lo, hi = np.percentile(m, [1, 99])
    return ("viridis", float(lo), float(hi if hi > lo else lo + 1e-6), False)


def _draw_overlay(pil, keypoints, points, groups, grid, shape, orient, scale):
    draw = ImageDraw.Draw(pil)
    if points is not None:
        p = points.detach().cpu().numpy() if hasattr(points, "detach") else np.asarray(points)
        uv = _to_display_px(p[:, :2], grid, shape, orient) * scale
        if groups is not None:
            g = np.asarray(groups).reshape(-1)
            if g.shape[0] != p.shape[0]:
                raise ValueError(f"render_distill_maps: point_groups has {g.shape[0]} entries for {p.shape[0]} points")
            cols = colormap((g * 0.618034) % 1.0, 0.0, 1.0, cmap="hsv")
            cols[g < 0] = (0, 255, 255)  # negative group: ungrouped points, cyan
        else:
            cols = np.tile(np.array([[0, 255, 255]], np.uint8), (len(p), 1))
        arr = np.asarray(pil).copy()
        R.splat_points(arr, uv, cols, radius=1)
        pil.paste(R.to_image(arr))
    if keypoints is not None:
        k = keypoints.detach().cpu().numpy() if hasattr(keypoints, "detach") else np.asarray(keypoints)
        uv = _to_display_px(k.reshape(-1, k.shape[-1])[:, :2], grid, shape, orient) * scale
        for u, v in uv:
            draw.line([(u - 3, v - 3), (u + 3, v + 3)], fill=(255, 255, 255), width=1)
            draw.line([(u - 3, v + 3), (u + 3, v - 3)], fill=(255, 255, 255), width=1)
