"""Decode an imported CenterPoint teacher exactly like its source toolbox.

kd3d's own :meth:`CenterHead.decode` keeps its defaults (top-1000, ``score >= t``, circle
radius in metres compared with ``<``, no centre range). A teacher imported from mmdet3d or
OpenPCDet carries a :class:`SourceDecode` on its model config instead, and
:class:`SourceDecodedCenterPoint` decodes with it:

=====================  ==============================  ==============================
setting                mmdet3d 1.x / 0.x CenterPoint   OpenPCDet CenterPoint
=====================  ==============================  ==============================
top-K per task         500 (``bbox_coder.max_num``)    500 (``MAX_OBJ_PER_SAMPLE``)
score threshold        ``score > 0.1`` (strict)        ``score > 0.1`` (strict)
post-centre range      +-61.2 m x/y, +-10 m z          the same
NMS                    circle: squared distance        rotated BEV IoU > 0.2, top 1000
                       ``<= min_radius[t]`` (m^2)       in, 83 out
post max per task      83                              83
boxes output with      bottom-centre z                 gravity-centre z
test voxels            120000                          (dataset config)
voxelization order     first-come (mmcv)               first-come (spconv CPU)
=====================  ==============================  ==============================

kd3d's boxes (:class:`Boxes3D`) always carry the gravity-centre z; ``output_z`` records the
source's convention so comparisons and exports convert explicitly (:func:`to_source_boxes`).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import torch

from kd3d.models.lidar.detector import LidarCenterPoint
from kd3d.ops.nms import rotated_nms
from kd3d.structures.boxes import Boxes3D

MMDET3D_NUSC_MIN_RADIUS = (4.0, 12.0, 10.0, 1.0, 0.85, 0.175)  # squared metres, per CenterPoint task


@dataclasses.dataclass(frozen=True)
class SourceDecode:
    """Decode settings of a source toolbox (see the module table). ``nms_radius_sq`` are
    squared metres per task (circle NMS suppresses at squared distance ``<=`` the value)."""

    source: str = "mmdet3d"
    top_k: int = 500
    score_threshold: float = 0.1
    post_center_range: tuple[float, ...] | None = (-61.2, -61.2, -10.0, 61.2, 61.2, 10.0)
    nms: str = "circle"                 # "circle" | "rotated" | "none"
    nms_radius_sq: tuple[float, ...] = MMDET3D_NUSC_MIN_RADIUS
    nms_iou: float = 0.2
    nms_pre_max: int = 1000
    post_max: int = 83
    max_voxels: int | None = 120000
    output_z: str = "bottom"            # the source's box z convention: "bottom" | "center"
    out_size_factor: int | None = None  # head stride in voxels and the voxel xy size: set from the
    voxel_size: tuple[float, ...] | None = None  # model by with_source_decode (the source's float steps)

    def __post_init__(self):
        if self.nms not in ("circle", "rotated", "none"):
            raise ValueError(f"SourceDecode.nms must be 'circle', 'rotated' or 'none', got {self.nms!r}")
        if self.output_z not in ("bottom", "center"):
            raise ValueError(f"SourceDecode.output_z must be 'bottom' or 'center', got {self.output_z!r}")
        if self.post_center_range is not None and len(self.post_center_range) != 6:
            raise ValueError(f"SourceDecode.post_center_range needs 6 values, got {self.post_center_range}")

    @classmethod
    def from_dict(cls, d: dict | "SourceDecode") -> "SourceDecode":
        if isinstance(d, SourceDecode):
            return d
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"SourceDecode: unknown fields {sorted(unknown)}")
        d = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()}
        return cls(**d)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


OPENPCDET_NUSC_DECODE = SourceDecode(source="openpcdet", nms="rotated", nms_radius_sq=(), output_z="center",
                                     max_voxels=None)


def circle_nms_sq(xy: np.ndarray, scores: np.ndarray, radius_sq: float, post_max: int) -> np.ndarray:
    """mmdet3d's circle NMS: greedy by descending score (its order: ``argsort()[::-1]``, which
    decides among tied scores); box j is dropped when ``(xi - xj)^2 + (yi - yj)^2 <= radius_sq``
    (float32 distance, float64 threshold) for a kept i; at most ``post_max`` kept. Not exact for
    exactly tied scores: mmdet3d's numba-compiled loop sorts with numba's own quicksort, whose
    order among ties can differ from numpy's."""
    xy = np.asarray(xy, dtype=np.float32)
    order = np.asarray(scores, dtype=np.float32).argsort()[::-1]
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for a, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[a + 1:]
        d = ((xy[i, 0] - xy[rest, 0]) ** 2 + (xy[i, 1] - xy[rest, 1]) ** 2).astype(np.float32)
        suppressed[rest[d.astype(np.float64) <= float(radius_sq)]] = True
    return np.asarray(keep[:post_max], dtype=np.int64)


def decode_task(heat: torch.Tensor, reg: torch.Tensor, grid, s: SourceDecode):
    """One task, one sample: heat (n_t, H, W) logits, reg (10, H, W) kd3d code -> (boxes (K, 9)
    float32 gravity-centre z, scores (K,), class index within the task (K,)) before NMS:
    top-``s.top_k`` over all classes and cells, then the strict score threshold and the
    post-centre range (source order)."""
    n_t, H, W = heat.shape
    prob = torch.sigmoid(heat.float()).reshape(n_t, -1)
    # CenterNet's two-stage top-K (mmdet3d / OpenPCDet ``_topk``): K per class, then K of those;
    # with tied scores (empty regions) this picks the same cells as the source
    k = min(s.top_k, H * W)
    s1, i1 = prob.topk(k, dim=1)
    scores, i2 = s1.reshape(-1).topk(min(s.top_k, n_t * k))
    cls, pix = i2 // k, i1.reshape(-1)[i2]
    r = reg.float().reshape(10, -1)[:, pix]  # (10, k)
    if s.voxel_size is not None:  # the source's arithmetic: (cell + offset) * factor * voxel + range min
        xs = ((pix % W).float() + r[0]) * s.out_size_factor * s.voxel_size[0] + grid.xmin
        ys = ((pix // W).float() + r[1]) * s.out_size_factor * s.voxel_size[1] + grid.ymin
    else:
        xs = ((pix % W).float() + r[0]) * grid.dx + grid.xmin
        ys = ((pix // W).float() + r[1]) * grid.dy + grid.ymin
    dims = torch.exp(r[3:6])
    yaw = torch.atan2(r[6], r[7])
    boxes = torch.stack([xs, ys, r[2], dims[0], dims[1], dims[2], yaw, r[8], r[9]], dim=1)
    keep = scores > s.score_threshold
    if s.post_center_range is not None:
        lo = torch.tensor(s.post_center_range[:3])
        hi = torch.tensor(s.post_center_range[3:])
        keep &= (boxes[:, :3] >= lo).all(1) & (boxes[:, :3] <= hi).all(1)
    return boxes[keep], scores[keep], cls[keep]


@torch.no_grad()
def source_decode(head, preds: dict, settings: SourceDecode) -> list[dict]:
    """Like :meth:`CenterHead.decode` (same result dicts, gravity-centre boxes, labels into
    ``head.class_names``, attrs -1) but with the source's settings."""
    B = preds["heatmaps"][0].shape[0]
    results = []
    for b in range(B):
        all_boxes, all_scores, all_labels = [], [], []
        for t, ids in enumerate(head.task_class_ids):
            boxes, scores, cls = decode_task(preds["heatmaps"][t][b], preds["regs"][t][b], head.grid, settings)
            if boxes.shape[0] and settings.nms == "circle":
                sel = torch.as_tensor(circle_nms_sq(boxes[:, :2].numpy(), scores.numpy(), settings.nms_radius_sq[t],
                                                    settings.post_max))
            elif boxes.shape[0] and settings.nms == "rotated":
                sel = rotated_nms(boxes[:, :7], scores, settings.nms_iou, pre_max=settings.nms_pre_max,
                                  post_max=settings.post_max)
            else:
                sel = torch.arange(min(boxes.shape[0], settings.post_max))
            all_boxes.append(boxes[sel])
            all_scores.append(scores[sel])
            all_labels.append(torch.as_tensor(ids)[cls[sel]])
        boxes = torch.cat(all_boxes).double().numpy().reshape(-1, 9)
        scores = torch.cat(all_scores).numpy().astype(np.float32)
        labels = torch.cat(all_labels).numpy().astype(np.int64)
        results.append({"boxes": Boxes3D(boxes), "scores": scores, "labels": labels,
                        "attrs": np.full(len(labels), -1, dtype=np.int64)})
    return results


def to_source_boxes(boxes: np.ndarray, settings: SourceDecode) -> np.ndarray:
    """(K, 9) kd3d boxes (gravity-centre z) -> the source's z convention (bottom: z - h / 2)."""
    out = np.array(boxes, dtype=np.float64, copy=True)
    if settings.output_z == "bottom":
        out[:, 2] -= out[:, 5] / 2
    return out


class SourceDecodedCenterPoint(LidarCenterPoint):
    """A :class:`LidarCenterPoint` (same modules, same state-dict keys) whose ``predict``
    decodes like its source toolbox (``decode``: :class:`SourceDecode`)."""

    def __init__(self, *, decode: SourceDecode, **modules):
        super().__init__(**modules)
        self.source_decode = decode

    def predict(self, output, batch=None) -> list[dict]:
        return source_decode(self.head, output.preds, self.source_decode)


def with_source_decode(model: LidarCenterPoint, decode: SourceDecode | dict) -> SourceDecodedCenterPoint:
    """The same modules re-wrapped with a source decode, the source's test voxel cap and the
    source's voxelization order (first-come: mmcv's hard voxelization, OpenPCDet's spconv CPU
    generator; kd3d's spconv default is hash-ordered on CUDA, see :mod:`kd3d.ops.voxelize`)."""
    decode = SourceDecode.from_dict(decode)
    vz = getattr(model.encoder, "voxelizer", None)
    if vz is not None:
        vz.order = "first"
    if decode.max_voxels is not None and vz is not None:
        vz.max_voxels = int(decode.max_voxels)
    if decode.voxel_size is None and vz is not None:
        factor = int(round(model.head.grid.dx / vz.voxel_size[0]))
        decode = dataclasses.replace(decode, out_size_factor=factor, voxel_size=tuple(vz.voxel_size[:2]))
    return SourceDecodedCenterPoint(decode=decode, encoder=model.encoder, backbone=model.backbone, neck=model.neck,
                                    head=model.head)


def imported_centerpoint(*, preset: str, decode: dict, **kwargs) -> SourceDecodedCenterPoint:
    """Model factory for imported teachers (``ModelConfig(name="kd3d.interop.decode:imported_centerpoint",
    kwargs={"preset": "centerpoint_voxel", "decode": {...}, ...})``): builds the kd3d model
    ``preset`` with ``kwargs`` and decodes it like the source."""
    from kd3d.models.build import ModelConfig, build_model

    return with_source_decode(build_model(ModelConfig(name=preset, kwargs=kwargs)), decode)


def mmdet3d_label_map(mm_class_names: Sequence[str], kd3d_class_names: Sequence[str]) -> np.ndarray:
    """(len(mm_class_names),) int64: mmdet3d label index -> kd3d label index (by name)."""
    missing = [c for c in mm_class_names if c not in kd3d_class_names]
    if missing:
        raise ValueError(f"mmdet3d classes {missing} not in kd3d class_names {tuple(kd3d_class_names)}")
    return np.asarray([list(kd3d_class_names).index(c) for c in mm_class_names], dtype=np.int64)
