"""The model registry and :func:`build_model` (beside the models they build).

``MODELS`` maps a config name to ``"module:callable"``; the module is imported only when that
name is built. ``ModelConfig.name`` may also be a ``"package.module:callable"`` path, so tests
build the models of :mod:`kd3d.testing` without registering them here.

This module imports no torch at import time (``kd3d.engine.config`` imports :class:`ModelConfig`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from kd3d.errors import ConfigError
from kd3d.registry import resolve

# model name -> factory(**model.kwargs) returning a kd3d BaseModel
MODELS: dict[str, str] = {
    "centerpoint_voxel": "kd3d.models.lidar.presets:centerpoint_voxel",
    "centerpoint_pillar": "kd3d.models.lidar.presets:centerpoint_pillar",
    "camera_bev_nuscenes": "kd3d.models.build:camera_bev_nuscenes",
    "camera_bev_synthetic": "kd3d.models.build:camera_bev_synthetic",
    "fusion_centerpoint": "kd3d.models.build:fusion_centerpoint",
    "sparse_unet_seg": "kd3d.models.seg.segmenter:sparse_unet_seg",
}


@dataclass
class ModelConfig:
    """``name`` is a key of :data:`MODELS` or a ``"package.module:callable"`` path; ``kwargs``
    go to that factory."""

    name: str = "centerpoint"
    kwargs: dict = field(default_factory=dict)


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


def camera_kwargs(kw: dict) -> dict:
    """Config values (lists, grid specs) -> the camera presets' keyword types (tuples, BEVGrid)."""
    kw = dict(kw)
    if "grid" in kw:
        kw["grid"] = as_grid(kw["grid"])
    for key in ("image_size", "depth_bins", "z_range", "bev_channels", "bev_blocks", "bev_strides"):
        if key in kw:
            kw[key] = tuple(kw[key])
    return kw


def camera_bev_nuscenes(**kw):
    """:func:`kd3d.models.camera.presets.camera_bev_nuscenes` from config keywords."""
    from kd3d.models.camera.presets import camera_bev_nuscenes as make

    return make(**camera_kwargs(kw))


def camera_bev_synthetic(**kw):
    """:func:`kd3d.models.camera.presets.camera_bev_synthetic` from config keywords."""
    from kd3d.models.camera.presets import camera_bev_synthetic as make

    return make(**camera_kwargs(kw))


def fusion_centerpoint(**kw):
    """:func:`kd3d.models.fusion.presets.fusion_centerpoint`; ``camera`` keywords converted."""
    from kd3d.models.fusion.presets import fusion_centerpoint as make

    if kw.get("camera"):
        kw["camera"] = camera_kwargs(kw["camera"])
    return make(**kw)


def build_model(cfg: ModelConfig):
    """``MODELS[cfg.name](**cfg.kwargs)`` (or the ``"module:callable"`` in ``cfg.name``): an
    ``nn.Module`` (a kd3d ``BaseModel``)."""
    factory = resolve(MODELS, cfg.name, "model.name")
    try:
        return factory(**cfg.kwargs)
    except TypeError as exc:
        raise ConfigError(f"model.kwargs for {cfg.name!r}: {exc}") from exc
