"""Building objects from an :class:`~kd3d.engine.config.ExperimentConfig` (the one place).

``MODELS`` and ``DATASETS`` map a config name to ``"module:callable"``; the module is imported
only when that name is built (no import side effects, optional dependencies stay optional).
"""
from __future__ import annotations

import importlib

import torch
from torch import nn

from kd3d.engine.config import ConfigError, DataConfig, ExperimentConfig, ModelConfig, OptimConfig
from kd3d.models.base import ModelOutput

# model name -> factory(**model.kwargs) returning a kd3d BaseModel
MODELS: dict[str, str] = {
    "centerpoint_voxel": "kd3d.models.lidar.presets:centerpoint_voxel",
    "centerpoint_pillar": "kd3d.models.lidar.presets:centerpoint_pillar",
    "camera_bev_nuscenes": "kd3d.engine.builders:_camera_bev_nuscenes",
    "camera_bev_synthetic": "kd3d.engine.builders:_camera_bev_synthetic",
    "fusion_centerpoint": "kd3d.engine.builders:_fusion_centerpoint",
    "sparse_unet_seg": "kd3d.models.seg.segmenter:sparse_unet_seg",
    "toy_bev": "kd3d.engine.toy:make_toy_model",
}

# dataset name -> factory(root=, version=, split=, train=, **kwargs) returning a Sample dataset
DATASETS: dict[str, str] = {
    "nuscenes": "kd3d.engine.datasets:nuscenes_dataset",
    "kitti": "kd3d.engine.datasets:kitti_dataset",
    "toy": "kd3d.engine.datasets:toy_dataset",
}


def _import(target: str, what: str):
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{what}: cannot import {target} ({exc})") from exc


def _lookup(table: dict[str, str], name: str, field: str):
    if name not in table:
        raise ConfigError(f"{field}: unknown name {name!r}; known: {sorted(table)}")
    return _import(table[name], f"{field}={name!r}")


def as_grid(value):
    """A :class:`BEVGrid` from a BEVGrid, ``[xmin, ymin, xmax, ymax, dx, dy]`` or the name of a
    LiDAR preset scale (``"synthetic"``/``"nuscenes"``: that teacher's head grid)."""
    from kd3d.structures.bev import BEVGrid

    if value is None or isinstance(value, BEVGrid):
        return value
    if isinstance(value, str):
        from kd3d.models.lidar.presets import head_grid

        return head_grid(value)
    if len(value) != 6:
        raise ConfigError(f"model.kwargs.grid: expected [xmin, ymin, xmax, ymax, dx, dy], got {value!r}")
    return BEVGrid(*(float(v) for v in value))


def _camera_kwargs(kw: dict) -> dict:
    kw = dict(kw)
    if "grid" in kw:
        kw["grid"] = as_grid(kw["grid"])
    for key in ("image_size", "depth_bins", "z_range", "bev_channels", "bev_blocks", "bev_strides"):
        if key in kw:
            kw[key] = tuple(kw[key])
    return kw


def _camera_bev_nuscenes(**kw):
    from kd3d.models.camera.presets import camera_bev_nuscenes

    return camera_bev_nuscenes(**_camera_kwargs(kw))


def _camera_bev_synthetic(**kw):
    from kd3d.models.camera.presets import camera_bev_synthetic

    return camera_bev_synthetic(**_camera_kwargs(kw))


def _fusion_centerpoint(**kw):
    from kd3d.models.fusion.presets import fusion_centerpoint

    if kw.get("camera"):
        kw["camera"] = _camera_kwargs(kw["camera"])
    return fusion_centerpoint(**kw)


def build_model(cfg: ModelConfig) -> nn.Module:
    """``MODELS[cfg.name](**cfg.kwargs)``."""
    factory = _lookup(MODELS, cfg.name, "model.name")
    try:
        return factory(**cfg.kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs for {cfg.name!r}: {exc}") from exc


def build_dataset(cfg: DataConfig, split: str, *, train: bool):
    """The dataset of ``split``; ``train`` selects ``train_kwargs`` (augmentation) vs ``val_kwargs``."""
    factory = _lookup(DATASETS, cfg.dataset, "data.dataset")
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

    Distillation hook: when ``cfg.distill`` is set, ``kd3d.distill.build_distiller(cfg.distill,
    student=model)`` must return an ``nn.Module`` whose ``forward(batch)`` returns a flat loss dict
    and which exposes ``student`` (the model) and ``student_state_dict()``; its frozen teacher
    must have ``requires_grad=False`` (the optimiser only takes trainable parameters).
    """
    if cfg.distill is None:
        return model
    build = getattr(cfg.distill, "build", None)
    if callable(build):
        return build(student=model)
    try:
        from kd3d.distill import build_distiller
    except ImportError as exc:
        raise ConfigError(f"distill: kd3d.distill.build_distiller is not available ({exc})") from exc
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
