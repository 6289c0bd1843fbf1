"""Small builders for method tests."""
from types import SimpleNamespace

import torch

from kd3d.distill.distiller import DistillContext
from kd3d.models.base import ModelOutput


def ctx_for(gt_boxes, grid, *, teacher_feats=None, teacher_grid=None, **batch_fields):
    boxes = [torch.as_tensor(b, dtype=torch.float32).reshape(-1, 9) for b in gt_boxes]
    return DistillContext(batch=SimpleNamespace(gt_boxes=boxes, **batch_fields), student_out=ModelOutput(),
                          teacher_out=ModelOutput(feats=dict(teacher_feats or {})), student_grid=grid,
                          teacher_grid=teacher_grid or grid)


def box(x, y, l, w, yaw=0.0):
    return [x, y, 0.0, l, w, 1.5, yaw, 0.0, 0.0]


def train_steps(distiller, batches, lr=0.05):
    """Run SGD steps; returns the loss dicts."""
    opt = torch.optim.SGD(distiller.trainable_parameters(), lr=lr)
    distiller.train()
    out = []
    for b in batches:
        losses = distiller(b)
        opt.zero_grad()
        sum(losses.values()).backward()
        opt.step()
        out.append({k: v.item() for k, v in losses.items()})
    return out
