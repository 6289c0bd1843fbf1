"""The one place kd3d imports spconv.

* Lazily imports ``spconv.pytorch`` with an install hint when it is missing.
* CPU shim: spconv's CPU build calls ``torch.cuda.current_stream()`` in its backward, which
  crashes without CUDA. :func:`get_spconv` patches ``spconv.pytorch.ops.get_current_stream``
  to return 0 when CUDA is unavailable (the CPU kernels ignore the stream).
* CPU race: spconv's CPU gather-mm-scatter path (``ops.indice_conv`` and
  ``ops.indice_conv_backward``) gives occasional wrong output rows when torch runs with more than
  one intra-op thread (measured: about 1 strided conv in 40 had one wrong site with 2 threads, none
  with 1). The shim runs those two functions with one torch thread on CPU tensors.
* Sparse layers must be built with ``bias=False`` (the CPU build rejects bias in eval mode);
  :func:`subm_conv3d` and :func:`sparse_conv3d` enforce it.
* :class:`Voxelizer` wraps spconv's point-to-voxel generator on CPU and CUDA.

Usage::

    from kd3d.ops.spconv import spconv   # the spconv.pytorch module, shim applied
"""
from __future__ import annotations

import functools

import torch

from kd3d.ops.voxelize import first_come_voxelize

_INSTALL_HINT = (
    "spconv is not installed (kd3d's sparse backbones need it): install exactly one build, the CPU one "
    "with `pip install \"kd3d[cpu]\"` (or `pip install spconv`) or the one matching your CUDA, e.g. "
    "`pip install \"kd3d[cu121]\"` (extras cu120, cu121, cu124, cu126)"
)


_SPCONV_GUARD = {"enabled": True}  # bench/threads.py turns it off to time the switching alone


def _single_threaded_on_cpu(fn):
    @functools.wraps(fn)
    def wrapper(features, *args, **kwargs):
        if features.is_cuda or not _SPCONV_GUARD["enabled"]:
            return fn(features, *args, **kwargs)
        threads = torch.get_num_threads()
        if threads == 1:
            return fn(features, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(features, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    wrapper._kd3d_single_thread = True
    return wrapper


@functools.lru_cache(maxsize=1)
def get_spconv():
    """Import ``spconv.pytorch`` with the CPU shim applied; returns the module."""
    import warnings

    # spconv 2.3 indexes with a list (deprecated in torch) on every densify, and its import trips
    # torch.fx's is_fx_tracing notice: both are noise for kd3d users, printed once per step.
    warnings.filterwarnings("ignore", message="Using a non-tuple sequence for multidimensional indexing")
    warnings.filterwarnings("ignore", message="is_fx_tracing will return true")
    try:
        import spconv.pytorch as spconv_pt
        from spconv.pytorch import ops as spconv_ops
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(_INSTALL_HINT) from exc
    for name in ("indice_conv", "indice_conv_backward"):
        fn = getattr(spconv_ops, name)
        if not getattr(fn, "_kd3d_single_thread", False):
            setattr(spconv_ops, name, _single_threaded_on_cpu(fn))
    if not torch.cuda.is_available():
        original = spconv_ops.get_current_stream

        def get_current_stream():
            if torch.cuda.is_available():  # pragma: no cover
                return original()
            return 0

        spconv_ops.get_current_stream = get_current_stream
    return spconv_pt


class _LazyModule:
    def __getattr__(self, name):
        return getattr(get_spconv(), name)


spconv = _LazyModule()


def subm_conv3d(in_channels: int, out_channels: int, kernel_size=3, *, indice_key: str | None = None, **kw):
    """Submanifold 3D conv without bias (see module docstring)."""
    if kw.pop("bias", False):
        raise ValueError("sparse convs in kd3d take bias=False (spconv's CPU build rejects bias in eval mode)")
    padding = kw.pop("padding", kernel_size // 2 if isinstance(kernel_size, int) else 1)
    return get_spconv().SubMConv3d(
        in_channels, out_channels, kernel_size, padding=padding, bias=False, indice_key=indice_key, **kw
    )


def sparse_conv3d(in_channels: int, out_channels: int, kernel_size=3, stride=2, padding=1, *, indice_key=None, **kw):
    """Strided (regular) sparse 3D conv without bias."""
    if kw.pop("bias", False):
        raise ValueError("sparse convs in kd3d take bias=False (spconv's CPU build rejects bias in eval mode)")
    return get_spconv().SparseConv3d(
        in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False,
        indice_key=indice_key, **kw
    )


def sparse_tensor(features: torch.Tensor, indices: torch.Tensor, spatial_shape, batch_size: int):
    """Build a ``SparseConvTensor``. ``indices`` (N, 4) int32 ``batch z y x``; ``spatial_shape`` (Z, Y, X)."""
    return get_spconv().SparseConvTensor(features, indices.int(), list(spatial_shape), batch_size)


def is_sparse_tensor(x) -> bool:
    return type(x).__name__ == "SparseConvTensor"


class Voxelizer:
    """Points -> voxels with spconv's ``PointToVoxel`` (CPU or CUDA by the points' device).

    ``voxel_size`` (vx, vy, vz) and ``point_range`` [xmin, ymin, zmin, xmax, ymax, zmax] in
    metres; ``spatial_shape`` is (Z, Y, X). Points outside the range are dropped; at most
    ``max_points_per_voxel`` points are kept per voxel and ``max_voxels`` voxels per sample.
    ``order``: ``"spconv"`` (kd3d's default: spconv's generator; first-come on CPU, hash order on
    CUDA) or ``"first"`` (:func:`kd3d.ops.voxelize.first_come_voxelize`: mmcv's / OpenPCDet's
    order on every device; imported teachers use it).
    """

    def __init__(self, *, voxel_size, point_range, num_point_features: int = 5,
                 max_points_per_voxel: int = 10, max_voxels: int = 60000, order: str = "spconv"):
        if order not in ("spconv", "first"):
            raise ValueError(f"Voxelizer: order must be 'spconv' or 'first', got {order!r}")
        self.order = order
        self.voxel_size = [float(v) for v in voxel_size]
        self.point_range = [float(v) for v in point_range]
        self.num_point_features = int(num_point_features)
        self.max_points_per_voxel = int(max_points_per_voxel)
        self.max_voxels = int(max_voxels)
        grid = [
            round((self.point_range[i + 3] - self.point_range[i]) / self.voxel_size[i]) for i in range(3)
        ]
        self.grid_size = grid  # (X, Y, Z)
        self.spatial_shape = [grid[2], grid[1], grid[0]]
        self._generators: dict[str, object] = {}

    def _generator(self, device: torch.device):
        key = str(device)
        if key not in self._generators:
            get_spconv()  # the install hint when spconv is missing
            from spconv.pytorch.utils import PointToVoxel

            self._generators[key] = PointToVoxel(
                vsize_xyz=self.voxel_size, coors_range_xyz=self.point_range,
                num_point_features=self.num_point_features, max_num_voxels=self.max_voxels,
                max_num_points_per_voxel=self.max_points_per_voxel, device=device,
            )
        return self._generators[key]

    def __call__(self, points: torch.Tensor):
        """(N, F) float32 points -> (voxels (V, P, F), coords (V, 3) int32 ``z y x``,
        num_points (V,) int32). Non-finite points are dropped first."""
        if points.ndim != 2 or points.shape[1] != self.num_point_features:
            raise ValueError(
                f"Voxelizer expects (N, {self.num_point_features}) points, got {tuple(points.shape)}"
            )
        points = points[torch.isfinite(points).all(dim=1)].contiguous().float()
        if points.shape[0] == 0:
            f = self.num_point_features
            return (points.new_zeros((0, self.max_points_per_voxel, f)),
                    torch.zeros((0, 3), dtype=torch.int32, device=points.device),
                    torch.zeros((0,), dtype=torch.int32, device=points.device))
        if self.order == "first":
            return first_come_voxelize(points, voxel_size=self.voxel_size, point_range=self.point_range,
                                       grid_size=self.grid_size, max_points=self.max_points_per_voxel,
                                       max_voxels=self.max_voxels)
        voxels, coords, num = self._generator(points.device)(points)
        return voxels, coords, num

    def batch(self, points_list: list[torch.Tensor]):
        """Voxelize a list of point clouds -> (voxels, coords (V, 4) int32 ``b z y x``, num_points)."""
        vs, cs, ns = [], [], []
        for b, pts in enumerate(points_list):
            v, c, n = self(pts)
            vs.append(v)
            cs.append(torch.nn.functional.pad(c, (1, 0), value=b))
            ns.append(n)
        return torch.cat(vs), torch.cat(cs), torch.cat(ns)
