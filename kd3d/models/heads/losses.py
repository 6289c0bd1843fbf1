"""Detection losses used by :class:`~kd3d.models.heads.center_head.CenterHead`."""
from __future__ import annotations

import torch


def gaussian_focal_loss(logits: torch.Tensor, target: torch.Tensor, *, alpha: float = 2.0, beta: float = 4.0,
                        eps: float = 1e-4) -> torch.Tensor:
    """CenterNet's penalty-reduced focal loss on a Gaussian heatmap.

    logits, target: (B, C, H, W); target in [0, 1] with exactly 1 at object centres.
    ``L = -1/N_pos * sum[ (1-p)^a log p  at t == 1 ;  (1-t)^b p^a log(1-p)  elsewhere ]``
    with ``p = clamp(sigmoid(logits), eps, 1 - eps)`` and ``N_pos = max(1, #{t == 1})``.
    """
    if logits.shape != target.shape:
        raise ValueError(f"gaussian_focal_loss: logits {tuple(logits.shape)} vs target {tuple(target.shape)}")
    p = torch.sigmoid(logits.float()).clamp(eps, 1 - eps)
    t = target.float()
    pos = t.eq(1).float()
    neg = 1.0 - pos
    pos_loss = -(torch.log(p) * (1 - p).pow(alpha) * pos).sum()
    neg_loss = -(torch.log(1 - p) * p.pow(alpha) * (1 - t).pow(beta) * neg).sum()
    return (pos_loss + neg_loss) / pos.sum().clamp(min=1.0)


def gather_cells(maps: torch.Tensor, ind: torch.Tensor) -> torch.Tensor:
    """maps (B, C, H, W), ind (B, M) flat cell indices -> (B, M, C)."""
    B, C = maps.shape[:2]
    flat = maps.reshape(B, C, -1)
    return flat.gather(2, ind[:, None, :].expand(B, C, ind.shape[1])).permute(0, 2, 1)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, code_weights: torch.Tensor,
              num: torch.Tensor) -> torch.Tensor:
    """``sum_c w_c * sum_m |pred - target| * mask / num``.

    pred, target: (B, M, C); mask: (B, M, C) bool; code_weights: (C,); num: scalar count of
    objects (clamped to >= 1).
    """
    diff = (pred.float() - target.float()).abs() * mask.float()
    per_channel = diff.sum(dim=(0, 1)) / num.clamp(min=1.0)
    return (per_channel * code_weights.to(per_channel)).sum()
