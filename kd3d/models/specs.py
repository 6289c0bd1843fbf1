"""Feature specs: what a model's named features look like, declared without running the model.

Every kd3d model exposes ``feature_specs() -> dict[str, FeatureSpec]`` with one entry per key
it puts in ``ModelOutput.feats`` (the spirit of detectron2's ``Backbone.output_shape()``).
Distillation reads channel counts and layouts from these specs (adapters, graph convs,
projection heads, the teacher cache's per-sample split), so configs never type them.

Kinds (the layout of the batched tensor, B samples):

===============  ===========================================================================
``bev``          dense (B, C, H, W) BEV map on ``grid`` (rows along y, ``grid.shape == (H, W)``)
``voxel``        ``SparseConvTensor``: features (V, C), indices (V, 4) ``b z y x`` on the
                 voxel grid ``point_range`` / ``voxel_size`` (``spatial_shape`` (Z, Y, X))
``pillar``       ``SparseConvTensor`` of pillars: as ``voxel`` with Z = 1 (the whole z range)
``point``        (N, C) one row per input point, the points of all samples concatenated in
                 batch order (``len(batch.points[b])`` rows per sample)
``key_point``    (N, C) one row per key-frame point (``batch.samples[b].num_key_points`` rows
                 per sample), samples concatenated
``image``        (B * NC, C, h, w) per-camera map, the NC cameras of a sample consecutive
===============  ===========================================================================

``stride`` is the downsampling along x/y relative to the model's finest input raster (the
voxel/pillar size for LiDAR models, the pooling grid for camera BEV maps, input pixels for
``image`` maps; 1 for points).
"""
from __future__ import annotations

from dataclasses import dataclass

from kd3d.structures.bev import BEVGrid

KINDS = ("bev", "voxel", "pillar", "point", "key_point", "image")
SPARSE_KINDS = ("voxel", "pillar")


@dataclass(frozen=True)
class FeatureSpec:
    """Shape and layout of one named feature (see the module docstring).

    channels     C of the feature
    kind         one of :data:`KINDS`
    stride       x/y downsampling relative to the model's finest input raster
    grid         :class:`BEVGrid` of a ``bev`` map (and the x/y footprint of a sparse grid)
    point_range  [xmin, ymin, zmin, xmax, ymax, zmax] metres of a sparse (voxel/pillar) grid
    voxel_size   (vx, vy, vz) metres of a sparse grid's cells
    """

    channels: int
    kind: str
    stride: float = 1
    grid: BEVGrid | None = None
    point_range: tuple[float, ...] | None = None
    voxel_size: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"FeatureSpec.kind: expected one of {KINDS}, got {self.kind!r}")
        if int(self.channels) != self.channels or self.channels < 1:
            raise ValueError(f"FeatureSpec.channels: expected a positive integer, got {self.channels!r}")
        if self.kind == "bev" and self.grid is None:
            raise ValueError("FeatureSpec: a 'bev' feature needs its grid")
        if self.kind in SPARSE_KINDS and (self.point_range is None or self.voxel_size is None):
            raise ValueError(f"FeatureSpec: a {self.kind!r} feature needs point_range and voxel_size")
        if self.point_range is not None:
            object.__setattr__(self, "point_range", tuple(float(v) for v in self.point_range))
        if self.voxel_size is not None:
            object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))

    @property
    def spatial_shape(self) -> tuple[int, int, int] | None:
        """(Z, Y, X) of a sparse grid (None for other kinds)."""
        if self.point_range is None or self.voxel_size is None:
            return None
        pr, vs = self.point_range, self.voxel_size
        return tuple(int(round((pr[i + 3] - pr[i]) / vs[i])) for i in (2, 1, 0))


def sparse_spec(channels: int, *, point_range, spatial_shape, stride: float, kind: str = "voxel",
                voxel_size=None) -> FeatureSpec:
    """Spec of a sparse tensor on ``spatial_shape`` (Z, Y, X) over ``point_range``. The cell size
    is ``voxel_size`` when given (the model's own value), else the range divided by the shape on
    each axis (the cell size of a strided stage)."""
    pr = [float(v) for v in point_range]
    z, y, x = (int(v) for v in spatial_shape)
    vs = tuple(voxel_size) if voxel_size is not None else ((pr[3] - pr[0]) / x, (pr[4] - pr[1]) / y, (pr[5] - pr[2]) / z)
    grid = BEVGrid.from_range(pr, vs[:2])
    return FeatureSpec(channels, kind, stride, grid=grid, point_range=tuple(pr), voxel_size=vs)


def head_specs(head, stride: float) -> dict[str, FeatureSpec]:
    """``heatmap``, ``reg`` and ``head_shared`` (the shared 3x3 conv + BN + ReLU output) of a
    CenterHead-like ``head`` (``named_feats``) on ``head.grid``."""
    from kd3d.models.heads.targets import REG_CHANNELS

    num_heat = len({c for ids in head.task_class_ids for c in ids})
    return {"heatmap": FeatureSpec(num_heat, "bev", stride, grid=head.grid),
            "reg": FeatureSpec(REG_CHANNELS * len(head.tasks), "bev", stride, grid=head.grid),
            "head_shared": FeatureSpec(head.share_channels, "bev", stride, grid=head.grid)}


def check_feature_specs(specs: dict, feats: dict, batch=None, *, where: str = "model") -> None:
    """Raise ``ValueError`` listing every way ``feats`` (a ``ModelOutput.feats`` of ``batch``)
    disagrees with ``specs``: keys without spec (or spec without feature), channels, kind,
    map size vs grid, sparse spatial shape vs point_range / voxel_size, per-sample row counts."""
    from kd3d.ops.spconv import is_sparse_tensor

    problems = []
    for key in sorted(set(feats) | set(specs)):
        if key not in specs:
            problems.append(f"{key}: produced but has no spec")
            continue
        if key not in feats:
            problems.append(f"{key}: has a spec but is not produced")
            continue
        spec, v = specs[key], feats[key]
        sparse = is_sparse_tensor(v)
        if spec.kind in SPARSE_KINDS:
            if not sparse:
                problems.append(f"{key}: spec kind {spec.kind!r} but the feature is {type(v).__name__}")
                continue
            if list(v.spatial_shape) != list(spec.spatial_shape):
                problems.append(f"{key}: spatial shape {list(v.spatial_shape)} != spec {list(spec.spatial_shape)}")
            if spec.kind == "pillar" and spec.spatial_shape[0] != 1:
                problems.append(f"{key}: a pillar grid has Z = 1, spec gives {spec.spatial_shape[0]}")
            ch = v.features.shape[1]
        else:
            if sparse or not hasattr(v, "shape"):
                problems.append(f"{key}: spec kind {spec.kind!r} but the feature is {type(v).__name__}")
                continue
            want_ndim = 2 if spec.kind in ("point", "key_point") else 4
            if v.ndim != want_ndim:
                problems.append(f"{key}: kind {spec.kind!r} is {want_ndim}-D, the feature is {tuple(v.shape)}")
                continue
            ch = v.shape[1]
            if spec.kind == "bev" and tuple(v.shape[-2:]) != spec.grid.shape:
                problems.append(f"{key}: map size {tuple(v.shape[-2:])} != grid shape {spec.grid.shape}")
            if batch is not None:
                rows = _expected_rows(spec.kind, batch)
                if rows is not None and v.shape[0] != rows:
                    problems.append(f"{key}: {v.shape[0]} rows, kind {spec.kind!r} expects {rows} for this batch")
        if ch != spec.channels:
            problems.append(f"{key}: {ch} channels, spec says {spec.channels}")
    if problems:
        raise ValueError(f"{where}: feature specs disagree with the output: " + "; ".join(problems))


def _expected_rows(kind: str, batch) -> int | None:
    b = len(batch.points) if getattr(batch, "points", None) else None
    if kind == "bev":
        return b
    if kind == "point":
        return sum(len(p) for p in batch.points)
    if kind == "key_point":
        return sum(int(s.num_key_points) for s in batch.samples)
    if kind == "image" and getattr(batch, "images", None) is not None:
        return batch.images.shape[0] * batch.images.shape[1]
    return None
