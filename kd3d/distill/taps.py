"""Forward hooks that read intermediate features from models you cannot edit.

kd3d's own models publish named features in ``ModelOutput.feats``; use taps only for foreign
models. ``FeatureTaps(model, {"bev": "backbone.layer2"})`` records the output of the submodule
``model.backbone.layer2`` under the name ``bev`` on every forward;
:class:`TappedModel` merges the recorded features into ``ModelOutput.feats``.
"""
from __future__ import annotations

from torch import nn

from kd3d.models.base import ModelOutput


class FeatureTaps:
    """Record submodule outputs by name.

    ``taps`` maps feature name -> dotted submodule path (as in ``model.named_modules()``).
    ``select`` picks an element when the submodule returns a tuple/list (default: the first).
    Call :meth:`remove` (or use as a context manager) to detach the hooks.
    """

    def __init__(self, model: nn.Module, taps: dict[str, str], *, select: int = 0):
        modules = dict(model.named_modules())
        missing = [path for path in taps.values() if path not in modules]
        if missing:
            sample = ", ".join(list(modules)[1:12])
            raise KeyError(f"FeatureTaps: no submodule {missing} in {type(model).__name__}; "
                           f"available (first few): {sample}")
        self.features: dict[str, object] = {}
        self._handles = []
        for name, path in taps.items():
            self._handles.append(modules[path].register_forward_hook(self._hook(name, select)))

    def _hook(self, name: str, select: int):
        def hook(module, inputs, output):
            if isinstance(output, (tuple, list)):
                output = output[select]
            self.features[name] = output

        return hook

    def clear(self) -> None:
        self.features = {}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class TappedModel(nn.Module):
    """Wrap a model so its forward returns a ``ModelOutput`` whose ``feats`` include tapped
    features. A model returning something other than ``ModelOutput`` gets ``preds={'out': ...}``.
    ``loss``/``predict`` are delegated."""

    def __init__(self, model: nn.Module, taps: dict[str, str], *, select: int = 0):
        super().__init__()
        self.model = model
        self._taps = FeatureTaps(model, taps, select=select)

    @property
    def bev_grid(self):
        return getattr(self.model, "bev_grid", None)

    def forward(self, batch) -> ModelOutput:
        self._taps.clear()
        out = self.model(batch)
        if not isinstance(out, ModelOutput):
            out = ModelOutput(preds={"out": out})
        out.feats.update(self._taps.features)
        return out

    def loss(self, output, batch):
        return self.model.loss(output, batch)

    def predict(self, output, batch):
        return self.model.predict(output, batch)
