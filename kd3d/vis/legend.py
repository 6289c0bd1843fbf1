"""Legends for the scene and camera pictures: what the box colours and line styles mean.

A legend is a list of :class:`LegendEntry` (text, RGB colour, style): one ``swatch`` per class
whose boxes are drawn (when boxes are coloured by class), then one ``solid`` line for ground
truth and one ``dashed`` line for predictions, matching how :mod:`kd3d.vis.bev` and
:mod:`kd3d.vis.camera` draw them. :func:`draw_legend` paints it in a corner of a picture.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import ImageDraw

from kd3d.vis import _raster as R
from kd3d.vis.colors import GT_COLOR, PRED_COLOR, class_color

STYLES = ("swatch", "solid", "dashed")
NEUTRAL = (230, 230, 230)  # line-style samples when the colour stands for the class


@dataclass(frozen=True)
class LegendEntry:
    text: str
    color: tuple[int, int, int]
    style: str  # one of STYLES


def class_label(label: int, class_names=None) -> str:
    """``class_names[label]`` when given and in range, else ``class <label>``."""
    label = int(label)
    if class_names is not None and 0 <= label < len(class_names):
        return str(class_names[label])
    return f"class {label}"


def box_legend(gt_labels=None, pred_labels=None, *, box_colors: str = "class", class_names=None,
               has_gt: bool | None = None, has_preds: bool | None = None) -> list[LegendEntry]:
    """Entries for a picture with GT boxes of classes ``gt_labels`` (K,) and drawn (above the
    score threshold) predictions of classes ``pred_labels`` (M,).

    ``box_colors="class"``: one swatch per class in either set (sorted by class index), then
    "ground truth" (solid) and "prediction" (dashed) in a neutral colour; ``"source"``: the two
    line entries in their own colours (GT green, predictions magenta). ``has_gt`` /
    ``has_preds`` default to "the labels are not empty"; an absent kind gets no line entry.
    """
    gt = np.asarray([] if gt_labels is None else gt_labels, dtype=np.int64).reshape(-1)
    pr = np.asarray([] if pred_labels is None else pred_labels, dtype=np.int64).reshape(-1)
    has_gt = bool(len(gt)) if has_gt is None else has_gt
    has_preds = bool(len(pr)) if has_preds is None else has_preds
    entries = []
    if box_colors == "class":
        for label in sorted(set(gt.tolist()) | set(pr.tolist())):
            entries.append(LegendEntry(class_label(label, class_names), class_color(label, class_names), "swatch"))
        gt_col, pred_col = NEUTRAL, NEUTRAL
    elif box_colors == "source":
        gt_col, pred_col = GT_COLOR, PRED_COLOR
    else:
        raise ValueError(f"box_colors must be 'class' or 'source', got {box_colors!r}")
    if has_gt:
        entries.append(LegendEntry("ground truth", gt_col, "solid"))
    if has_preds:
        entries.append(LegendEntry("prediction", pred_col, "dashed"))
    return entries


def draw_legend(img: np.ndarray, entries: list[LegendEntry], *, corner: str = "top-left",
                size: int = 12, margin: int = 4) -> np.ndarray:
    """Paint ``entries`` in a dark box at ``corner`` (``top-left``, ``top-right``,
    ``bottom-left``, ``bottom-right``) of ``img`` (H, W, 3) uint8; returns a new array (the input
    unchanged when there are no entries)."""
    if corner not in ("top-left", "top-right", "bottom-left", "bottom-right"):
        raise ValueError(f"draw_legend: corner must be top-left/top-right/bottom-left/bottom-right, got {corner!r}")
    if not entries:
        return img
    for e in entries:
        if e.style not in STYLES:
            raise ValueError(f"legend entry {e.text!r}: style must be one of {STYLES}, got {e.style!r}")
    pil = R.to_image(img)
    draw = ImageDraw.Draw(pil)
    f = R.font(size)
    line_h = size + 4
    sample_w = 2 * size
    text_w = max(draw.textbbox((0, 0), e.text, font=f)[2] for e in entries)
    box_w = margin * 3 + sample_w + text_w
    box_h = margin * 2 + line_h * len(entries)
    h, w = img.shape[:2]
    x0 = margin if corner.endswith("left") else w - margin - box_w
    y0 = margin if corner.startswith("top") else h - margin - box_h
    draw.rectangle([x0, y0, x0 + box_w, y0 + box_h], fill=(20, 20, 20), outline=(110, 110, 110))
    for i, e in enumerate(entries):
        top = y0 + margin + i * line_h
        xs, mid = x0 + margin, top + line_h / 2
        if e.style == "swatch":
            draw.rectangle([xs, top + 2, xs + sample_w, top + line_h - 3], fill=e.color)
        else:
            seg = np.array([[[xs, mid], [xs + sample_w, mid]]])
            R.draw_segments(draw, seg, e.color, 2, dash=4.0 if e.style == "dashed" else None)
        draw.text((xs + sample_w + margin, top + 1), e.text, fill=(235, 235, 235), font=f)
    return np.asarray(pil).copy()
