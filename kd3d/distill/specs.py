"""Channel counts and geometry of distilled features, read from the models' feature specs.

Term builders (``<method>_terms``) receive ``student_specs`` / ``teacher_specs`` (the models'
``feature_specs()``, :mod:`kd3d.models.specs`) from :func:`build_terms_for_models` and take
every channel count and voxel geometry from them, so configs never type them. Explicit keywords
(``student_channels=...``) remain for building terms without models; given together with a
spec they must agree (a stale hand-typed value is an error, not silently used).
"""
from __future__ import annotations

import inspect

from torch import nn


def model_specs(model: nn.Module | None) -> dict | None:
    """``model.feature_specs()``, or None for a model that declares none (e.g. one read by taps)."""
    fn = getattr(model, "feature_specs", None)
    if model is None or not callable(fn):
        return None
    try:
        return dict(fn())
    except NotImplementedError:
        return None


def feature_spec(specs: dict | None, key: str, *, side: str, method: str):
    """The spec of ``key`` in ``specs`` (None when ``specs`` is None); a clear error when the
    model does not produce ``key``."""
    if specs is None:
        return None
    if key not in specs:
        raise ValueError(f"{method}: the {side} has no feature {key!r} (its feature_specs: {sorted(specs)})")
    return specs[key]


def spec_channels(specs: dict | None, key: str, explicit: int | None, *, side: str, method: str) -> int:
    """Channels of feature ``key`` on ``side`` ('student'/'teacher'): from the spec, or the
    explicit ``<side>_channels`` when building without models; both given must agree."""
    spec = feature_spec(specs, key, side=side, method=method)
    if spec is None:
        if explicit is None:
            raise ValueError(f"{method}: {side}_channels is required when the terms are built without a {side} "
                             f"model (no feature specs for {key!r})")
        return int(explicit)
    if explicit is not None and int(explicit) != spec.channels:
        raise ValueError(f"{method}: {side}_channels={explicit} but the {side}'s {key!r} has {spec.channels} "
                         "channels (feature_specs); drop the hand-typed value")
    return spec.channels


def spec_geometry(specs: dict | None, key: str, field: str, explicit, *, side: str, method: str):
    """``point_range`` / ``voxel_size`` of a sparse feature ``key`` from its spec, or ``explicit``
    (without a model); both given must agree. None when neither is known."""
    spec = feature_spec(specs, key, side=side, method=method)
    value = None if spec is None else getattr(spec, field)
    if value is None:
        return None if explicit is None else list(explicit)
    if explicit is not None and [round(float(v), 9) for v in explicit] != [round(v, 9) for v in value]:
        raise ValueError(f"{method}: {field}={list(explicit)} but the {side}'s {key!r} has {list(value)} "
                         "(feature_specs); drop the hand-typed value")
    return list(value)


def build_terms_for_models(method: str, method_kwargs: dict, *, student: nn.Module | None,
                           teacher: nn.Module | None):
    """``(terms, adapters)`` of ``method`` with the models' feature specs passed to its term
    builder (when the builder accepts ``student_specs`` / ``teacher_specs``)."""
    from kd3d.distill.methods import build_terms, get_method

    kwargs = dict(method_kwargs)
    params = inspect.signature(get_method(method).build_terms).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for name, model in (("student_specs", student), ("teacher_specs", teacher)):
        if name in kwargs:
            raise ValueError(f"distill.method_kwargs.{name}: specs come from the models, not from the config")
        specs = model_specs(model)
        if specs is not None and (takes_all or name in params):
            kwargs[name] = specs
    return build_terms(method, **kwargs)
