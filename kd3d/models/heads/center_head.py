"""CenterHead: CenterPoint's anchor-free BEV detection head, independent of the modality.

Input: a BEV map (B, in_channels, H, W) on ``grid`` (a :class:`~kd3d.structures.BEVGrid`
with ``grid.shape == (H, W)``, LiDAR frame). Per task (a group of class names) it predicts a
heatmap (B, n_task, H, W) of logits and a regression map (B, 10, H, W) with the code of
:mod:`kd3d.models.heads.targets` (offset 2, z 1, log dims 3, sin/cos yaw 2, velocity 2).

Usage (LiDAR teacher and camera student alike)::

    head = CenterHead(in_channels=256, tasks=[["car"], ["pedestrian", "bicycle"]], grid=grid)
    preds = head(bev)                                    # {"heatmaps": [...], "regs": [...]}
    losses = head.loss(preds, batch.gt_boxes, batch.gt_labels)   # {"heatmap", "bbox"}
    # with attributes=NUSC_ATTRIBUTES: head.loss(..., gt_attrs=batch.gt_attrs) adds "attr"
    dets = head.decode(preds)                            # list[B] of result dicts
    feats = head.named_feats(preds)                      # {"heatmap", "reg", "head_shared"} (model contract)
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kd3d.models.heads.losses import gather_cells, gaussian_focal_loss, masked_l1
from kd3d.models.heads.targets import REG_CHANNELS, build_task_targets, decode_boxes
from kd3d.ops.nms import circle_nms, rotated_nms
from kd3d.structures.bev import BEVGrid
from kd3d.structures.boxes import Boxes3D
from kd3d.structures.classes import NUSC_ATTRIBUTES, NUSC_CLASS_ATTRIBUTES

_REG_GROUPS = (("offset", 2), ("z", 1), ("dims", 3), ("rot", 2), ("vel", 2))
DEFAULT_CODE_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2)


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Branch(nn.Sequential):
    def __init__(self, cin: int, hidden: int, cout: int, num_convs: int, bias_init: float | None = None):
        layers = []
        c = cin
        for _ in range(num_convs - 1):
            layers.append(_conv_bn_relu(c, hidden))
            c = hidden
        final = nn.Conv2d(c, cout, 3, padding=1, bias=True)
        if bias_init is not None:
            nn.init.constant_(final.bias, bias_init)
        layers.append(final)
        super().__init__(*layers)


class CenterHead(nn.Module):
    """CenterPoint head with one heatmap + regression branch set per task.

    Keyword arguments:
      in_channels     channels of the input BEV map
      tasks           list of class-name groups, e.g. ``[["car"], ["truck", "bus"]]``
      grid            BEVGrid of the input map (its shape must equal the map's (H, W))
      class_names     dataset class order that ``gt_labels`` and output ``labels`` index;
                      default: the tasks flattened. Every task class must be in it.
      share_channels  width of the shared 3x3 conv (default 64)
      head_channels   hidden width of every branch (default 64); num_head_convs: convs per branch
      min_overlap, min_radius   Gaussian radius rule (CenterNet radius, floor, >= min_radius)
      reg_weight      weight of the L1 box loss (0.25); code_weights: (10,) per-channel weights
      score_threshold, pre_max (top-K per task), post_max (per task after NMS)
      nms             ``"circle"`` (centre distance ``nms_radius`` metres, one value or one per
                      task), ``"rotated"`` (BEV IoU > ``nms_iou``) or ``"none"``
      attributes      attribute names for an optional attribute branch (e.g. NUSC_ATTRIBUTES;
                      default () = no branch, output attrs -1); class_attributes: allowed
                      attribute names per class (default NUSC_CLASS_ATTRIBUTES for nuScenes
                      attributes; a class with none gets -1); attr_weight: CE weight
    """

    def __init__(self, *, in_channels: int, tasks: Sequence[Sequence[str]], grid: BEVGrid,
                 class_names: Sequence[str] | None = None, share_channels: int = 64, head_channels: int = 64,
                 num_head_convs: int = 2, min_overlap: float = 0.1, min_radius: int = 2, reg_weight: float = 0.25,
                 code_weights: Sequence[float] = DEFAULT_CODE_WEIGHTS, score_threshold: float = 0.1,
                 pre_max: int = 1000, post_max: int = 83, nms: str = "circle",
                 nms_radius: float | Sequence[float] = 1.0, nms_iou: float = 0.2,
                 attributes: Sequence[str] = (), class_attributes: dict | None = None, attr_weight: float = 0.2):
        super().__init__()
        self.tasks = [tuple(t) for t in tasks]
        if not self.tasks or any(len(t) == 0 for t in self.tasks):
            raise ValueError(f"CenterHead: tasks must be non-empty groups of class names, got {tasks}")
        self.class_names = tuple(class_names) if class_names is not None else tuple(c for t in self.tasks for c in t)
        missing = [c for t in self.tasks for c in t if c not in self.class_names]
        if missing:
            raise ValueError(f"CenterHead: task classes {missing} not in class_names {self.class_names}")
        self.task_class_ids = [[self.class_names.index(c) for c in t] for t in self.tasks]
        if not isinstance(grid, BEVGrid):
            raise TypeError(f"CenterHead: grid must be a BEVGrid, got {type(grid).__name__}")
        if nms not in ("circle", "rotated", "none"):
            raise ValueError(f"CenterHead: nms must be 'circle', 'rotated' or 'none', got {nms!r}")
        if len(code_weights) != REG_CHANNELS:
            raise ValueError(f"CenterHead: code_weights must have {REG_CHANNELS} values, got {len(code_weights)}")
        self.grid = grid
        self.in_channels = int(in_channels)
        self.min_overlap, self.min_radius = float(min_overlap), int(min_radius)
        self.reg_weight = float(reg_weight)
        self.register_buffer("code_weights", torch.tensor(code_weights, dtype=torch.float32), persistent=False)
        self.score_threshold, self.pre_max, self.post_max = float(score_threshold), int(pre_max), int(post_max)
        self.nms, self.nms_iou = nms, float(nms_iou)
        radii = [float(nms_radius)] * len(self.tasks) if np.isscalar(nms_radius) else [float(r) for r in nms_radius]
        if len(radii) != len(self.tasks):
            raise ValueError(f"CenterHead: nms_radius needs one value per task ({len(self.tasks)}), got {nms_radius}")
        self.nms_radius = radii
        self.attributes = tuple(attributes)
        self.attr_weight = float(attr_weight)
        if self.attributes:
            if class_attributes is None:
                if set(self.attributes) != set(NUSC_ATTRIBUTES):
                    raise ValueError("CenterHead: class_attributes is required for non-nuScenes attributes")
                class_attributes = NUSC_CLASS_ATTRIBUTES
            allowed = torch.zeros((len(self.class_names), len(self.attributes)), dtype=torch.bool)
            for ci, c in enumerate(self.class_names):
                for a in class_attributes.get(c, ()):
                    if a not in self.attributes:
                        raise ValueError(f"CenterHead: attribute {a!r} of class {c!r} not in attributes")
                    allowed[ci, self.attributes.index(a)] = True
            self.register_buffer("attr_allowed", allowed, persistent=False)
        self.share_channels = int(share_channels)
        self.shared = _conv_bn_relu(self.in_channels, self.share_channels)
        self.task_heads = nn.ModuleList()
        for t in self.tasks:
            branches = nn.ModuleDict({"heatmap": _Branch(share_channels, head_channels, len(t), num_head_convs, -2.19)})
            for name, ch in _REG_GROUPS:
                branches[name] = _Branch(share_channels, head_channels, ch, num_head_convs)
            if self.attributes:
                branches["attr"] = _Branch(share_channels, head_channels, len(self.attributes), num_head_convs)
            self.task_heads.append(branches)
        # channel permutation: concatenated task heatmaps -> class_names order (absent classes skipped)
        flat = [c for ids in self.task_class_ids for c in ids]
        self._hm_perm = [flat.index(c) for c in range(len(self.class_names)) if c in flat]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> dict:
        """x: (B, in_channels, H, W) on ``grid`` -> {"heatmaps": list[T] of (B, n_t, H, W) logits,
        "regs": list[T] of (B, 10, H, W), "shared": (B, share_channels, H, W) output of the shared
        3x3 conv + BN + ReLU that every task branch reads} (+ "attrs": list[T] of (B, A, H, W)
        attribute logits when the head has attributes)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CenterHead: expected (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != self.grid.shape:
            raise ValueError(f"CenterHead: map size {tuple(x.shape[-2:])} != grid shape {self.grid.shape} "
                             f"(grid {self.grid})")
        y = self.shared(x)
        heatmaps, regs, attrs = [], [], []
        for branches in self.task_heads:
            heatmaps.append(branches["heatmap"](y))
            regs.append(torch.cat([branches[name](y) for name, _ in _REG_GROUPS], dim=1))
            if self.attributes:
                attrs.append(branches["attr"](y))
        out = {"heatmaps": heatmaps, "regs": regs, "shared": y}
        if self.attributes:
            out["attrs"] = attrs
        return out

    def named_feats(self, preds: dict) -> dict:
        """{"heatmap": (B, K, H, W) logits in ``class_names`` order (classes of no task left out),
        "reg": (B, 10 * T, H, W) task regression maps concatenated, "head_shared":
        (B, share_channels, H, W) the shared conv's output (BEVDistill's dense-term feature; only
        when ``preds`` carries it, as :meth:`forward`'s output does)}."""
        hm = torch.cat(preds["heatmaps"], dim=1)
        feats = {"heatmap": hm[:, self._hm_perm], "reg": torch.cat(preds["regs"], dim=1)}
        if "shared" in preds:
            feats["head_shared"] = preds["shared"]
        return feats

    # ------------------------------------------------------------------ loss
    def loss(self, preds: dict, gt_boxes: list, gt_labels: list, gt_attrs: list | None = None
             ) -> dict[str, torch.Tensor]:
        """Gaussian focal loss on heatmaps + ``reg_weight`` * L1 on box codes, summed over tasks.

        gt_boxes: list[B] of (Mi, 9) LiDAR-frame boxes (NaN velocity allowed: masked);
        gt_labels: list[B] of (Mi,) int64 indices into ``class_names``; gt_attrs: list[B] of (Mi,)
        int64 indices into ``attributes`` (-1 none), used only by a head with attributes.
        Returns {"heatmap": scalar, "bbox": scalar (already weighted)} (+ "attr": weighted
        cross-entropy at GT centre cells, for a head with attributes).
        """
        if len(gt_boxes) != preds["heatmaps"][0].shape[0] or len(gt_labels) != len(gt_boxes):
            raise ValueError(f"CenterHead.loss: {len(gt_boxes)} gt_boxes / {len(gt_labels)} gt_labels for a "
                             f"batch of {preds['heatmaps'][0].shape[0]}")
        device = preds["heatmaps"][0].device
        gt_boxes = [g.to(device) for g in gt_boxes]
        gt_labels = [g.to(device) for g in gt_labels]
        hm_loss = preds["heatmaps"][0].new_zeros(())
        box_loss = preds["heatmaps"][0].new_zeros(())
        attr_loss = preds["heatmaps"][0].new_zeros(())
        if gt_attrs is not None:
            gt_attrs = [g.to(device) for g in gt_attrs]
        for t, ids in enumerate(self.task_class_ids):
            tg = build_task_targets(gt_boxes, gt_labels, ids, self.grid, min_overlap=self.min_overlap,
                                    min_radius=self.min_radius, gt_attrs=gt_attrs)
            if self.attributes:
                logits = gather_cells(preds["attrs"][t], tg["ind"])  # (B, M, A)
                valid = tg["mask"] & (tg["attr"] >= 0)
                if valid.any():
                    attr_loss = attr_loss + F.cross_entropy(logits[valid].float(), tg["attr"][valid])
                else:
                    attr_loss = attr_loss + logits.sum() * 0.0
            hm_loss = hm_loss + gaussian_focal_loss(preds["heatmaps"][t], tg["heatmap"])
            pred = gather_cells(preds["regs"][t], tg["ind"])
            num = tg["mask"].sum().float()
            box_loss = box_loss + masked_l1(pred, tg["codes"], tg["code_mask"], self.code_weights, num)
        losses = {"heatmap": hm_loss, "bbox": self.reg_weight * box_loss}
        if self.attributes:
            losses["attr"] = self.attr_weight * attr_loss
        return losses

    # ------------------------------------------------------------------ decode
    @torch.no_grad()
    def decode(self, preds: dict) -> list[dict]:
        """Top-K per task -> score threshold -> NMS per task -> per-sample results.

        Returns list[B] of {"boxes": Boxes3D (LiDAR frame), "scores": (K,) float32,
        "labels": (K,) int64 into ``class_names``, "attrs": (K,) int64 into ``attributes``, the
        best attribute allowed for the class, -1 without attributes} (numpy).
        """
        B = preds["heatmaps"][0].shape[0]
        H, W = self.grid.shape
        out = [{"boxes": [], "scores": [], "labels": [], "attrs": []} for _ in range(B)]
        for t, ids in enumerate(self.task_class_ids):
            heat = torch.sigmoid(preds["heatmaps"][t].float())
            reg = preds["regs"][t].float()
            n_t = heat.shape[1]
            k = min(self.pre_max, n_t * H * W)
            scores, idx = heat.reshape(B, -1).topk(k, dim=1)
            cls = idx // (H * W)
            pix = idx % (H * W)
            codes = gather_cells(reg, pix)  # (B, k, 10)
            attr_logits = gather_cells(preds["attrs"][t].float(), pix) if self.attributes else None
            cells = torch.stack([pix % W, pix // W], dim=-1)
            ids_t = torch.as_tensor(ids, device=cls.device)
            for b in range(B):
                keep = scores[b] >= self.score_threshold
                boxes = decode_boxes(cells[b][keep], codes[b][keep], self.grid)
                sc, lab = scores[b][keep], ids_t[cls[b][keep]]
                if attr_logits is not None:
                    allowed = self.attr_allowed[lab]
                    masked = attr_logits[b][keep].masked_fill(~allowed, float("-inf"))
                    attr = torch.where(allowed.any(1), masked.argmax(1), torch.full_like(lab, -1))
                else:
                    attr = torch.full_like(lab, -1)
                if boxes.shape[0] and self.nms == "circle":
                    sel = circle_nms(boxes[:, :2], sc, self.nms_radius[t], post_max=self.post_max)
                elif boxes.shape[0] and self.nms == "rotated":
                    sel = rotated_nms(boxes[:, :7], sc, self.nms_iou, post_max=self.post_max)
                else:
                    sel = torch.arange(min(boxes.shape[0], self.post_max), device=boxes.device)
                out[b]["boxes"].append(boxes[sel])
                out[b]["scores"].append(sc[sel])
                out[b]["labels"].append(lab[sel])
                out[b]["attrs"].append(attr[sel])
        results = []
        for r in out:
            boxes = torch.cat(r["boxes"]).double().cpu().numpy()
            scores = torch.cat(r["scores"]).cpu().numpy().astype(np.float32)
            labels = torch.cat(r["labels"]).cpu().numpy().astype(np.int64)
            attrs = torch.cat(r["attrs"]).cpu().numpy().astype(np.int64)
            order = np.argsort(-scores, kind="stable")
            results.append({"boxes": Boxes3D(boxes[order].reshape(-1, 9)), "scores": scores[order],
                            "labels": labels[order], "attrs": attrs[order]})
        return results
