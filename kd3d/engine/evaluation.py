"""Inference over a split (DDP-aware) and dispatch to the evaluators.

An evaluator is ``fn(results, dataset, out_dir, **kwargs) -> dict[str, float]`` where
``results`` maps a sample token to the model's per-sample prediction dict (see
:mod:`kd3d.models.base`) and ``dataset`` is the evaluated split. Evaluators write their result
files (submission JSON, KITTI label files, lidarseg ``.bin`` files) under ``out_dir``.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from torch import nn

from kd3d.engine import dist
from kd3d.engine.config import ConfigError
from kd3d.registry import resolve

# evaluator name -> "module:function" (eval.evaluator may also be a "module:function" path)
EVALUATORS: dict[str, str] = {
    "nuscenes_det": "kd3d.engine.eval_adapters:nuscenes_det",
    "nuscenes_seg": "kd3d.engine.eval_adapters:nuscenes_seg",
    "kitti": "kd3d.engine.eval_adapters:kitti_det",
    "none": "kd3d.engine.evaluation:no_evaluation",
}


def no_evaluation(results, dataset, out_dir=None, **_) -> dict[str, float]:
    return {"num_samples": float(len(results))}


def get_evaluator(name: str):
    """The evaluator function ``EVALUATORS[name]`` (or the ``"module:function"`` in ``name``)."""
    return resolve(EVALUATORS, name, "eval.evaluator")


def autocast_context(device: torch.device, amp: str):
    """bf16/fp16 autocast on CUDA; a null context on CPU or with ``amp='none'``."""
    if device.type != "cuda" or amp == "none":
        return contextlib.nullcontext()
    if amp not in ("bf16", "fp16"):
        raise ConfigError(f"runtime.amp: expected 'none', 'bf16' or 'fp16', got {amp!r}")
    return torch.autocast("cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


@torch.no_grad()
def run_inference(model: nn.Module, loader, device: torch.device, *, amp: str = "none",
                  progress: bool = False) -> dict[str, dict]:
    """Predictions of ``model`` on every batch of ``loader``, gathered from all ranks.

    Returns ``{token: prediction}`` on rank 0 (duplicates from sampler padding collapse by
    token) and ``{}`` on the other ranks. The model is put in eval mode and restored.
    """
    was_training = model.training
    model.eval()
    local: dict[str, dict] = {}
    it = loader
    if progress and dist.is_main():
        from tqdm import tqdm

        it = tqdm(loader, desc="inference", leave=False, dynamic_ncols=True)
    for batch in it:
        batch = batch.to(device)
        with autocast_context(device, amp):
            out = model(batch)
        preds = model.predict(out, batch)
        if len(preds) != len(batch):
            raise RuntimeError(f"{type(model).__name__}.predict returned {len(preds)} results for {len(batch)} samples")
        for sample, pred in zip(batch.samples, preds):
            local[sample.token] = pred
    model.train(was_training)
    gathered = dist.all_gather_object(local)
    if not dist.is_main():
        return {}
    merged: dict[str, dict] = {}
    for part in gathered:
        merged.update(part)
    return merged


def evaluate_results(results: dict, dataset, name: str, out_dir: str | Path | None, **kwargs) -> dict[str, float]:
    """Run evaluator ``name`` on gathered results (call on rank 0 only)."""
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    metrics = get_evaluator(name)(results, dataset, out_dir, **kwargs)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
