"""Building objects from an :class:`~kd3d.engine.config.ExperimentConfig` (the one place).

Models come from :func:`kd3d.models.build.build_model` (the registry beside the models);
datasets from ``DATASETS`` here, which maps a config name to ``"module:callable"`` (imported only
when that name is built; ``data.dataset`` may also be such a path, e.g. a test rig's dataset in ``kd3d.testing``).
"""
from __future__ import annotations

import torch
from torch import nn

from kd3d.engine.config import ConfigError, DataConfig, ExperimentConfig, OptimConfig
from kd3d.models.base import ModelOutput
from kd3d.registry import resolve

# dataset name -> factory(root=, version=, split=, train=, **kwargs) returning a Sample dataset
DATASETS: dict[str, str] = {
    "nuscenes": "kd3d.engine.datasets:nuscenes_dataset",
    "kitti": "kd3d.engine.datasets:kitti_dataset",
    "mmdet3d_infos": "kd3d.engine.datasets:mmdet3d_infos_dataset",
}


def build_dataset(cfg: DataConfig, split: str, *, train: bool):
    """The dataset of ``split``; ``train`` selects ``train_kwargs`` (augmentation) vs ``val_kwargs``."""
    factory = resolve(DATASETS, cfg.dataset, "data.dataset")
    kwargs = {**cfg.kwargs, **(cfg.train_kwargs if train else cfg.val_kwargs)}
    ds = factory(root=cfg.root, version=cfg.version, split=split, train=train, **kwargs)
    if len(ds) == 0:
        raise ConfigError(f"data: split {split!r} of {cfg.dataset!r} at {cfg.root} is empty")
    return ds


class TrainStep(nn.Module):
    """Wraps the trained network so that ``forward(batch)`` returns the flat loss dict.

    * a model (``forward -> ModelOutput``): losses = ``model.loss(output, batch)``;
    * a distiller (``forward -> dict``): its dict as is (``student/...``, ``distill/...``).

    DDP wraps this module, so gradient sync covers both cases.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, batch) -> dict[str, torch.Tensor]:
        out = self.net(batch)
        if isinstance(out, ModelOutput):
            return self.net.loss(out, batch)
        if isinstance(out, dict):
            return out
        raise TypeError(f"{type(self.net).__name__}.forward must return ModelOutput or a loss dict, "
                        f"got {type(out).__name__}")


def build_train_module(cfg: ExperimentConfig, model: nn.Module) -> nn.Module:
    """The module the trainer optimises: ``model`` itself, or a Distiller wrapping it.

    When ``cfg.distill`` (a :class:`~kd3d.distill.config.DistillConfig`) is set this is
    ``kd3d.distill.build_distiller(cfg.distill, student=model)``: an ``nn.Module`` whose
    ``forward(batch)`` returns a flat loss dict, exposing ``student`` (the model) and
    ``student_state_dict()``; its frozen teacher has ``requires_grad=False`` (the optimiser only
    takes trainable parameters).
    """
    if cfg.distill is None:
        return model
    from kd3d.distill.build import build_distiller
    from kd3d.distill.config import DistillConfig

    if not isinstance(cfg.distill, DistillConfig):
        raise ConfigError(f"distill: expected a kd3d.distill.DistillConfig or None, got {type(cfg.distill).__name__}")
    return build_distiller(cfg.distill, student=model)


def build_optimizer(cfg: OptimConfig, module: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("optim: the model has no trainable parameters")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=tuple(cfg.betas))


def build_scheduler(cfg: OptimConfig, optimizer, total_steps: int):
    """One-cycle: warm up from ``lr / div_factor`` to ``lr`` over ``pct_start`` of the run, cosine
    anneal to ``lr / div_factor / final_div_factor``; beta1 cycles 0.95 -> 0.85 -> 0.95."""
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, total_steps=max(total_steps, 2), pct_start=cfg.pct_start,
        div_factor=cfg.div_factor, final_div_factor=cfg.final_div_factor, anneal_strategy="cos",
        cycle_momentum=True, base_momentum=0.85, max_momentum=0.95,
    )
