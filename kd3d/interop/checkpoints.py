"""Weight-layout transforms between kd3d and other toolboxes (pure tensor functions, exact).

Every trap of importing / exporting CenterPoint weights is one function here, so each has a
test on hand-built tensors (``tests/interop/test_checkpoints.py``):

* sparse-conv kernels: three layouts exist (``SPARSE_LAYOUTS``); kd3d uses spconv >= 2.2's
  ``KRSC``. For ``in == out`` convs all three shapes coincide, so a checkpoint's layout comes
  from its provenance (:func:`mmdet3d_sparse_layout` reads mmdet3d's ``_metadata`` version),
  never from one tensor's shape; :func:`infer_sparse_layout` only accepts a layout that the
  checkpoint's *asymmetric* convs prove (used when no provenance is recorded, e.g. OpenPCDet).
* stride-1 1x1 neck layers: ``Conv2d`` (out, in, 1, 1) in mmdet3d / OpenPCDet,
  ``ConvTranspose2d`` (in, out, 1, 1) in kd3d -> :func:`conv1x1_to_deconv` (a transpose; for
  in == out the shapes coincide and a naive copy is silently wrong).
* a conv bias before BatchNorm (OpenPCDet's ``USE_BIAS_BEFORE_NORM``) is folded into the BN's
  running mean (:func:`fold_bias_into_bn`); BN epsilons that differ are absorbed into the
  running variance (:func:`adjust_bn_eps`).
* regression rows of the head's final conv: :func:`permute_rows` (OpenPCDet's (cos, sin) ->
  (sin, cos); mmdet3d 0.x dims (w, l, h) -> (l, w, h)) and :func:`mmdet3d_v0_rot_rows`
  (0.x yaw ``a`` -> 1.x yaw ``-a - pi/2``: sin/cos rows swapped and negated).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import torch

# name -> (axis order, provenance). "K" = out channels, "C" = in channels, "RS" = kernel dims.
SPARSE_LAYOUTS: dict[str, str] = {
    "KRSC": "(out, kD, kH, kW, in): spconv >= 2.2 (kd3d, mmdet3d 1.x with spconv 2, OpenPCDet with spconv >= 2.2)",
    "RSKC": "(kD, kH, kW, out, in): spconv 2.0-2.1 native algorithm",
    "RSCK": "(kD, kH, kW, in, out): spconv 1.x and mmcv's sparse ops (mmdet3d 0.x, 1.x without spconv 2)",
}


def _check_layout(layout: str) -> None:
    if layout not in SPARSE_LAYOUTS:
        raise ValueError(f"sparse-conv layout must be one of {sorted(SPARSE_LAYOUTS)}, got {layout!r}")


# layout -> permute order that takes it to KRSC, and the inverse order (KRSC -> layout)
_TO_KRSC = {"RSKC": (3, 0, 1, 2, 4), "RSCK": (4, 0, 1, 2, 3)}
_FROM_KRSC = {"RSKC": (1, 2, 3, 0, 4), "RSCK": (1, 2, 3, 4, 0)}


def _permute_kernel(w: torch.Tensor, layout: str, orders: dict[str, tuple[int, ...]]) -> torch.Tensor:
    _check_layout(layout)
    if w.ndim != 5:
        raise ValueError(f"sparse-conv kernel must have 5 dims (3D conv), got shape {tuple(w.shape)}")
    if layout in orders:
        w = w.permute(*orders[layout])
    return w.contiguous()


def sparse_weight_to_kd3d(w: torch.Tensor, layout: str) -> torch.Tensor:
    """A sparse-conv kernel in ``layout`` -> kd3d's KRSC (out, kD, kH, kW, in), contiguous."""
    return _permute_kernel(w, layout, _TO_KRSC)


def sparse_weight_from_kd3d(w: torch.Tensor, layout: str) -> torch.Tensor:
    """Inverse of :func:`sparse_weight_to_kd3d`: KRSC -> ``layout``."""
    return _permute_kernel(w, layout, _FROM_KRSC)


def sparse_shape_in(layout: str, kernel: Sequence[int], cin: int, cout: int) -> tuple[int, ...]:
    """The shape a (kernel, cin -> cout) sparse-conv kernel has in ``layout``."""
    _check_layout(layout)
    k = tuple(int(v) for v in kernel)
    return {"KRSC": (cout, *k, cin), "RSKC": (*k, cout, cin), "RSCK": (*k, cin, cout)}[layout]


def mmdet3d_sparse_layout(metadata: dict | None, prefix: str) -> str | None:
    """Layout of the sparse conv at module ``prefix`` (no trailing dot) from a state dict's
    ``_metadata``: mmdet3d (with spconv 2 installed) sets ``SparseModule._version = 2`` and its
    loader permutes every kernel whose recorded version is not 2 from mmcv's RSCK. So version 2
    -> KRSC, a recorded other version -> RSCK, no entry -> None (provenance unknown)."""
    if not metadata or prefix not in metadata:
        return None
    return "KRSC" if metadata[prefix].get("version") == 2 else "RSCK"


def infer_sparse_layout(convs: Iterable[tuple[str, tuple[int, ...], Sequence[int], int, int]]) -> str:
    """The one layout that every *asymmetric* conv proves: ``convs`` = (key, shape, kernel, cin,
    cout) with cin/cout known from the target architecture. A conv whose shape fits several
    layouts (in == out) proves nothing; the result must be unique and fit every conv, else a
    ValueError asks for the layout explicitly (``kd3d convert --sparse-layout``)."""
    convs = list(convs)
    candidates = set(SPARSE_LAYOUTS)
    proof = None
    for key, shape, kernel, cin, cout in convs:
        fits = {lay for lay in SPARSE_LAYOUTS if sparse_shape_in(lay, kernel, cin, cout) == tuple(shape)}
        if not fits:
            raise ValueError(f"sparse conv {key}: shape {tuple(shape)} fits no layout for kernel {tuple(kernel)}, "
                             f"{cin} -> {cout} channels")
        if len(fits) == 1 and proof is None:
            proof = key
        candidates &= fits
    flag = f"pass --sparse-layout {'|'.join(sorted(SPARSE_LAYOUTS))}"
    if not candidates:
        raise ValueError(f"sparse-conv kernels of the checkpoint fit no single layout (e.g. {proof}): {flag}")
    if len(candidates) > 1:
        raise ValueError(f"sparse-conv layout not determined by the checkpoint (possible: {sorted(candidates)}; "
                         f"no conv with in != out proves one): {flag}")
    return candidates.pop()


def conv1x1_to_deconv(w: torch.Tensor) -> torch.Tensor:
    """Conv2d kernel (out, in, 1, 1), stride 1 -> the equal ConvTranspose2d kernel (in, out, 1, 1)."""
    if w.ndim != 4 or tuple(w.shape[2:]) != (1, 1):
        raise ValueError(f"expected a 1x1 Conv2d kernel (out, in, 1, 1), got shape {tuple(w.shape)}")
    return w.transpose(0, 1).contiguous()


def deconv_to_conv1x1(w: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`conv1x1_to_deconv` (the same transpose)."""
    return conv1x1_to_deconv(w)


def fold_bias_into_bn(bias: torch.Tensor, running_mean: torch.Tensor) -> torch.Tensor:
    """BN(conv(x) + b) == BN'(conv(x)) with BN' = BN whose running mean is ``mean - b``
    (exact in eval mode; in train mode the batch mean absorbs ``b`` anyway). Returns the new mean."""
    if bias.shape != running_mean.shape:
        raise ValueError(f"conv bias {tuple(bias.shape)} and BN running_mean {tuple(running_mean.shape)} differ")
    return running_mean - bias


def adjust_bn_eps(running_var: torch.Tensor, eps_source: float, eps_target: float, key: str = "bn") -> torch.Tensor:
    """Running variance for a BN with ``eps_target`` that normalises like the source BN with
    ``eps_source``: ``var + eps_source - eps_target`` (must stay >= 0)."""
    out = running_var + (float(eps_source) - float(eps_target))
    if (out < 0).any():
        raise ValueError(f"{key}: running_var + {eps_source} - {eps_target} < 0; cannot match the BN epsilon")
    return out


def permute_rows(t: torch.Tensor, order: Sequence[int]) -> torch.Tensor:
    """Rows (dim 0: output channels of a conv weight or its bias) reordered: out[i] = t[order[i]]."""
    if sorted(order) != list(range(t.shape[0])):
        raise ValueError(f"row order {list(order)} is not a permutation of {t.shape[0]} rows")
    return t[list(order)].contiguous()


def mmdet3d_v0_rot_rows(t: torch.Tensor) -> torch.Tensor:
    """Final-conv rows (sin a, cos a) of an mmdet3d 0.x head (yaw ``a``) -> rows regressing
    (sin b, cos b) with the 1.x yaw ``b = -a - pi/2``: sin b = -cos a, cos b = -sin a."""
    if t.shape[0] != 2:
        raise ValueError(f"rot rows must be 2 (sin, cos), got {t.shape[0]}")
    return -t[[1, 0]].contiguous()


def mmdet3d_v0_rot_rows_inverse(t: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`mmdet3d_v0_rot_rows` (the map is an involution)."""
    return mmdet3d_v0_rot_rows(t)
