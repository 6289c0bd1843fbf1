"""Pair a foreign state dict with a kd3d model's, section by section, and load foreign files safely.

A *section* is a (source prefix, kd3d prefix) pair covering one network part (sparse encoder,
2D backbone, neck, one head branch). Inside a section, modules are paired in registration
order *per kind* (``norm``: has ``running_mean``; ``weight``: conv / deconv / linear), which
both toolboxes share for the CenterPoint layers (conv before its BatchNorm, stages in forward
order), independent of how either side names its submodules. Every pair is checked (same
parameter names, shapes after the section's transform), and every key of both sides must be
used exactly once: a foreign checkpoint never loads partially.

:func:`load_foreign` reads ``.pth`` files of other toolboxes without running their code.
"""
from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from torch import nn


def modules_of(state: dict, prefix: str) -> "OrderedDict[str, dict]":
    """{module path: {param name: tensor}} of the keys under ``prefix``, in first-appearance order."""
    out: OrderedDict[str, dict] = OrderedDict()
    for key, value in state.items():
        if key.startswith(prefix):
            mod, _, name = key.rpartition(".")
            out.setdefault(mod, {})[name] = value
    return out


def kind(params: dict) -> str:
    return "norm" if "running_mean" in params else "weight"


def is_stride1_deconv(mod: nn.Module) -> bool:
    """A 1x1 stride-1 ``ConvTranspose2d``: kd3d's form of the other toolboxes' 1x1 ``Conv2d`` neck
    layers (:func:`~kd3d.interop.checkpoints.conv1x1_to_deconv`)."""
    return isinstance(mod, nn.ConvTranspose2d) and tuple(mod.kernel_size) == (1, 1) and tuple(mod.stride) == (1, 1)


def pair_modules(src: "OrderedDict[str, dict]", dst: "OrderedDict[str, dict]", what: str) -> list[tuple[str, str]]:
    """(source module, kd3d module) pairs: the i-th module of each kind with the i-th of the same kind."""
    pairs = []
    for k in ("weight", "norm"):
        s = [m for m, p in src.items() if kind(p) == k]
        d = [m for m, p in dst.items() if kind(p) == k]
        if len(s) != len(d):
            raise ValueError(f"{what}: the checkpoint has {len(s)} {k} modules, the kd3d model {len(d)} "
                             f"(checkpoint {s[:3]}..., kd3d {d[:3]}...): not the same architecture")
        pairs += list(zip(s, d))
    return pairs


def fold_conv_bias_before_norm(state: dict, prefix: str, keep_bias: Callable[[str], bool]) -> dict:
    """A copy of ``state`` where every conv under ``prefix`` that has a bias and is directly
    followed (in module order) by a BatchNorm of the same width loses its bias into that norm's
    running mean (:func:`~kd3d.interop.checkpoints.fold_bias_into_bn`), unless ``keep_bias(conv)``."""
    from kd3d.interop.checkpoints import fold_bias_into_bn

    state = OrderedDict(state)
    mods = list(modules_of(state, prefix).items())
    for (m, p), (n, q) in zip(mods, mods[1:]):
        if kind(p) == "weight" and "bias" in p and kind(q) == "norm" and not keep_bias(m):
            if p["bias"].shape == q["running_mean"].shape:
                state[f"{n}.running_mean"] = fold_bias_into_bn(p["bias"], q["running_mean"])
                del state[f"{m}.bias"]
    return state


class _Opaque:
    """Stand-in for a class of another toolbox found in a checkpoint (e.g. mmengine's
    HistoryBuffer in ``message_hub``): holds its arguments and state, runs no foreign code."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


_ALLOWED = {
    ("collections", "OrderedDict"), ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("torch", "device"),
    ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"), ("builtins", "set"), ("builtins", "slice"),
    ("_codecs", "encode"), ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
}


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED or (module == "torch" and isinstance(getattr(torch, name, None), torch.dtype)):
            return super().find_class(module, name)
        if module.startswith("numpy.dtypes") and name.endswith("DType"):
            return super().find_class(module, name)
        return type(f"Opaque[{module}.{name}]", (_Opaque,), {})


class _InertPickleModule:
    Unpickler = _InertUnpickler
    load = staticmethod(lambda f, **kw: _InertUnpickler(f, **kw).load())
    __name__ = "kd3d.interop.mapping._InertPickleModule"


def load_foreign(path) -> dict:
    """A foreign ``.pth`` as a dict: ``torch.load(weights_only=True)`` first; a file that
    references other classes (mmengine's message hub, OpenPCDet's optimizer state) is read with
    an unpickler that turns every non-tensor class into an inert :class:`_Opaque` (no foreign
    code runs). Tensors and the state dicts' ``_metadata`` survive either way."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        obj = torch.load(path, map_location="cpu", weights_only=False, pickle_module=_InertPickleModule)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj
