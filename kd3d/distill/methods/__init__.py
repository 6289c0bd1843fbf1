"""Distillation methods: one ``METHODS`` table of :class:`MethodDescriptor` entries.

Each method module (bevdistill, distillbev, unidistill, pointdistiller, pvd, generic) defines a
``DESCRIPTOR`` next to its code: the method's name, its term builder
``build_terms(**config) -> (terms, adapters)``, a one-line description and, optionally, a
visualisation hook ``maps(ctx: MapContext) -> MethodMaps`` that returns the named 2D maps the
method weights or samples with (what ``kd3d vis distill`` draws).

``METHODS`` loads the built-in modules listed in :data:`BUILTIN_MODULES` on first access (so
importing this package stays light); an out-of-tree method calls :func:`register` with its
descriptor and is then found by :func:`build_terms` and the visualisation like a built-in one.
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Callable

BUILTIN_MODULES = tuple(f"kd3d.distill.methods.{m}" for m in
                        ("bevdistill", "distillbev", "unidistill", "pointdistiller", "pvd", "generic"))


@dataclass(frozen=True)
class MapContext:
    """What a visualisation hook sees for one sample ``batch_index`` of ``batch``.

    grid          BEVGrid of the maps to return ((H, W) = ``grid.shape``, rows y, columns x,
                  LiDAR frame); every map a hook returns has this shape
    teacher_feat  (C_t, H, W) teacher map of the shown term, or None (point-only distillers,
                  or no model: then a model-free stand-in may be given)
    student_feat  (C_s', H', W') adapted student map of the shown term, or None
    student_out, teacher_out  the full ``ModelOutput`` of both models (empty without models)
    terms         this method's ``DistillTerm``s in the Distiller (empty without a Distiller:
                  the hook then uses its losses' own defaults)
    inputs        ``inputs(term) -> (student value after the adapter, teacher value)`` for the
                  whole batch, or None without a Distiller
    distill_ctx   the :class:`~kd3d.distill.distiller.DistillContext` the losses see, or None
    """

    batch: Any
    batch_index: int
    grid: Any
    teacher_feat: Any = None
    student_feat: Any = None
    student_out: Any = None
    teacher_out: Any = None
    terms: tuple = ()
    inputs: Callable | None = None
    distill_ctx: Any = None

    def boxes(self):
        """(M, 9) float64 CPU GT boxes of the shown sample (LiDAR frame, ``Boxes3D`` layout)."""
        import torch

        boxes = self.batch.gt_boxes[self.batch_index]
        return torch.as_tensor(getattr(boxes, "data", boxes), dtype=torch.float64).detach().cpu().reshape(-1, 9)

    def losses(self, cls) -> list:
        """The loss modules of this method's terms that are instances of ``cls`` (may be empty:
        the hook then falls back to ``cls``'s own defaults)."""
        return [t.loss for t in self.terms if isinstance(t.loss, cls)]

    def term_of(self, cls):
        """The first of this method's terms whose loss is a ``cls``, or None."""
        return next((t for t in self.terms if isinstance(t.loss, cls)), None)


@dataclass(frozen=True)
class MethodMaps:
    """A hook's result: ``maps`` name -> (H, W) tensor/array on ``MapContext.grid`` (bool masks,
    integer regions or float weights); optional overlays in metric LiDAR xy: ``keypoints``
    (M, 2) drawn as crosses, ``points`` (N, 2) drawn as dots coloured by ``point_groups`` (N,);
    ``overlay`` names what they are (the overlay tile's title)."""

    maps: dict = field(default_factory=dict)
    keypoints: Any = None
    points: Any = None
    point_groups: Any = None
    overlay: str = ""


@dataclass(frozen=True)
class MethodDescriptor:
    """One distillation method.

    name         key in ``METHODS`` and ``DistillConfig.method``
    build_terms  ``(**config) -> (list[DistillTerm], dict[str, nn.Module])``
    description  one line for listings
    maps         optional visualisation hook ``(MapContext) -> MethodMaps``
    """

    name: str
    build_terms: Callable[..., tuple]
    description: str = ""
    maps: Callable[[MapContext], MethodMaps] | None = None


class _MethodTable(Mapping):
    """name -> MethodDescriptor; the built-in modules are imported on first access."""

    def __init__(self):
        self._entries: dict[str, MethodDescriptor] = {}
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for mod in BUILTIN_MODULES:
            desc = getattr(importlib.import_module(mod), "DESCRIPTOR", None)
            if not isinstance(desc, MethodDescriptor):
                raise TypeError(f"{mod}: expected a module-level DESCRIPTOR = MethodDescriptor(...)")
            self._entries.setdefault(desc.name, desc)

    def __getitem__(self, name: str) -> MethodDescriptor:
        self._load()
        return self._entries[name]

    def __iter__(self):
        self._load()
        return iter(self._entries)

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def add(self, desc: MethodDescriptor, replace_existing: bool) -> None:
        self._load()
        if desc.name in self._entries and not replace_existing and self._entries[desc.name] is not desc:
            raise ValueError(f"distillation method {desc.name!r} is already registered "
                             "(pass replace=True to override it)")
        self._entries[desc.name] = desc

    def remove(self, name: str) -> None:
        self._load()
        self._entries.pop(name, None)


METHODS: Mapping[str, MethodDescriptor] = _MethodTable()


def register(descriptor: MethodDescriptor, *, replace: bool = False) -> MethodDescriptor:
    """Add ``descriptor`` to ``METHODS`` (an out-of-tree method); returns it. A second method of
    the same name raises unless ``replace``."""
    if not isinstance(descriptor, MethodDescriptor):
        raise TypeError(f"register: expected a MethodDescriptor, got {type(descriptor).__name__}")
    if not descriptor.name or not callable(descriptor.build_terms):
        raise ValueError("register: a MethodDescriptor needs a non-empty name and a callable build_terms")
    METHODS.add(descriptor, replace)
    return descriptor


def unregister(name: str) -> None:
    """Remove method ``name`` from ``METHODS`` (no-op when absent)."""
    METHODS.remove(name)


def get_method(name: str) -> MethodDescriptor:
    """The descriptor of ``name``; ``KeyError`` listing the known methods otherwise."""
    if name not in METHODS:
        raise KeyError(f"unknown distillation method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


def build_terms(method: str, **config):
    """``(terms, adapters)`` of ``method`` built from keyword ``config``; every term records the
    method that built it (``DistillTerm.method``)."""
    terms, adapters = get_method(method).build_terms(**config)
    return [t if t.method == method else replace(t, method=method) for t in terms], adapters
