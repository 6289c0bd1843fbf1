"""Teacher cache: run the teacher once, store what the distillation terms read, replay it.

Layout under ``root``::

    manifest.json          {"format": 2, "fingerprint": ..., "keys": [...], "kinds": {...},
                            "bev_grid": [...]}
    entries/<name>.pt      one file per sample token (torch.save, read with weights_only=True):
                           {"token", "fingerprint", "feats", "checksum"}

* Only the feature keys the terms read are stored (:func:`required_teacher_keys`: every
  term's ``teacher_key`` plus the ``extra_teacher_keys`` a loss declares, e.g. DistillBEV's
  teacher heatmap), floating tensors in float16 (read back as float32).
* Per-sample split of the batched features by the teacher's feature spec
  (:mod:`kd3d.models.specs`), never by name or shape: ``bev`` maps on the batch dimension,
  ``image`` maps (B*NC, ...) into B equal chunks, ``voxel`` / ``pillar`` sparse tensors by
  batch index, ``point`` rows by the samples' point counts and ``key_point`` rows by their
  key-frame point counts; a feature whose rows do not match is an error naming it.
* ``region_margin`` (metres, opt-in): ``bev`` maps keep only the cells near GT boxes (zeros
  elsewhere on load) - for terms that read only foreground (BEVDistill dense/instance,
  UniDistill); not for DistillBEV (background region) or whole-map losses.
* The fingerprint hashes the teacher's state dict (names, dtypes, shapes, bytes) and the term
  configuration; opening a cache with another fingerprint invalidates it (entries removed).
* Writes are atomic (temporary file + ``os.replace``); every entry stores a sha256 of its
  features (names, dtypes, shapes, bytes) checked on read. An unreadable entry or one whose
  bytes were overwritten raises :class:`CacheCorruptError` naming the file and the sample.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path

import torch

from kd3d.models.base import ModelOutput
from kd3d.models.specs import SPARSE_KINDS
from kd3d.ops.spconv import is_sparse_tensor, sparse_tensor
from kd3d.structures.bev import BEVGrid

FORMAT = 2  # 2: split by feature spec, checksum per entry


class CacheCorruptError(RuntimeError):
    """A cache entry cannot be read (truncated, corrupt or from another configuration)."""


def required_teacher_keys(terms) -> list[str]:
    keys: list[str] = []
    for term in terms:
        tk = term.teacher_key if isinstance(term.teacher_key, (tuple, list)) else (term.teacher_key,)
        for k in tuple(tk) + tuple(getattr(term.loss, "extra_teacher_keys", ())):
            if k not in keys:
                keys.append(k)
    return keys


def fingerprint(teacher: torch.nn.Module, terms) -> str:
    """sha256 over the teacher's state dict and the terms' configuration."""
    h = hashlib.sha256()
    for name, value in sorted(teacher.state_dict().items()):
        h.update(f"{name}|{value.dtype}|{tuple(value.shape)}".encode())
        t = value.detach().cpu().contiguous().reshape(-1)
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    for term in terms:
        h.update(term.describe().encode())
    return h.hexdigest()


def _entry_name(token: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_.-]{1,120}", token) and not token.startswith("."):
        return token
    return "h_" + hashlib.sha1(token.encode()).hexdigest()


def _rows_per_sample(kind: str, batch, n: int, key: str) -> list[int]:
    if kind == "point":
        sizes, what = [len(p) for p in batch.points], "point counts"
    else:
        sizes, what = [int(s.num_key_points) for s in batch.samples], "key-frame point counts"
    if sum(sizes) != n:
        raise ValueError(f"teacher cache: feature {key!r} (kind {kind!r}) has {n} rows, the batch's {what} "
                         f"{sizes} sum to {sum(sizes)}")
    return sizes


def _split(feats: dict, keys, batch, bsz: int, specs: dict | None) -> list[dict]:
    """Per-sample entries of the teacher's batched ``feats``, split by each key's spec kind."""
    per = [dict() for _ in range(bsz)]
    for key in keys:
        if key not in feats:
            raise KeyError(f"teacher cache: the teacher output has no feature {key!r}; available {sorted(feats)}")
        spec = (specs or {}).get(key)
        if spec is None:
            raise ValueError(f"teacher cache: the teacher declares no feature spec for {key!r} "
                             "(its feature_specs() must cover every cached feature)")
        v, kind = feats[key], spec.kind
        if kind in SPARSE_KINDS:
            if not is_sparse_tensor(v):
                raise ValueError(f"teacher cache: feature {key!r} has spec kind {kind!r} but is {type(v).__name__}")
            for b in range(bsz):
                m = v.indices[:, 0] == b
                per[b][key] = {"kind": "sparse", "features": v.features[m].detach(),
                               "indices": v.indices[m, 1:].detach().int(), "spatial_shape": list(v.spatial_shape)}
        elif not torch.is_tensor(v):
            raise ValueError(f"teacher cache: feature {key!r} (kind {kind!r}) is {type(v).__name__}, not a tensor")
        elif kind in ("point", "key_point"):
            for b, chunk in enumerate(v.detach().split(_rows_per_sample(kind, batch, v.shape[0], key))):
                per[b][key] = {"kind": "points", "data": chunk}
        elif kind in ("bev", "image"):
            if (kind == "bev" and v.shape[0] != bsz) or v.shape[0] % bsz:
                raise ValueError(f"teacher cache: feature {key!r} (kind {kind!r}) has leading size {v.shape[0]} "
                                 f"for a batch of {bsz}")
            for b, chunk in enumerate(v.detach().chunk(bsz, dim=0)):
                per[b][key] = {"kind": "dense", "data": chunk}
        else:
            raise ValueError(f"teacher cache: cannot split feature {key!r} of kind {kind!r} per sample")
    return per


def entry_checksum(feats: dict) -> str:
    """sha256 over an entry's stored features: key, field, dtype, shape and bytes of each tensor
    (other fields by ``repr``), in sorted order."""
    h = hashlib.sha256()
    for key in sorted(feats):
        for name in sorted(feats[key]):
            v = feats[key][name]
            h.update(f"{key}|{name}|".encode())
            if torch.is_tensor(v):
                t = v.detach().cpu().contiguous()
                h.update(f"{t.dtype}|{tuple(t.shape)}|".encode())
                if t.numel():
                    h.update((t.to(torch.uint8) if t.dtype == torch.bool else t).reshape(-1).view(torch.uint8).numpy())
            else:
                h.update(repr(v).encode())
    return h.hexdigest()


def _crop_regions(entry: dict, boxes: torch.Tensor, grids: dict, margin: float) -> dict:
    """Keep only the cells of the (1, C, H, W) ``bev`` maps (``grids``: key -> their BEVGrid)
    within ``margin`` metres of a GT box (circle of radius ``margin + max(l, w) / 2`` around each
    box centre); the rest is zero on load."""
    out = {}
    for key, item in entry.items():
        data = item.get("data")
        if key not in grids:
            out[key] = item
            continue
        h, w = data.shape[-2:]
        g = grids[key]
        if g.shape != (h, w):
            raise ValueError(f"teacher cache: feature {key!r} is {h}x{w}, its spec grid {g} is {g.shape}")
        centres = torch.as_tensor(g.cell_centers(), dtype=torch.float64).reshape(-1, 2)
        keep = torch.zeros(h * w, dtype=torch.bool)
        for bx in boxes.detach().cpu().double():
            r = margin + 0.5 * max(float(bx[3]), float(bx[4]))
            keep |= ((centres - bx[:2]) ** 2).sum(dim=1) <= r * r
        cells = torch.nonzero(keep, as_tuple=True)[0]
        out[key] = {"kind": "dense_cells", "shape": list(data.shape), "cells": cells,
                    "data": data.reshape(data.shape[1], -1)[:, cells]}
    return out


def _from_cells(item: dict) -> torch.Tensor:
    shape = item["shape"]
    full = torch.zeros(shape[1], shape[2] * shape[3], dtype=item["data"].dtype)
    full[:, item["cells"]] = item["data"]
    return full.reshape(shape)


def _to_storage(entry: dict, dtype) -> dict:
    out = {}
    for key, item in entry.items():
        item = dict(item)
        for f in ("data", "features"):
            if f in item:
                t = item[f].cpu()
                item[f] = t.to(dtype) if t.is_floating_point() else t
        out[key] = item
    return out


class TeacherCache:
    """On-disk teacher features keyed by sample token (see the module docstring)."""

    def __init__(self, root, *, fingerprint: str, keys, specs: dict | None = None, bev_grid: BEVGrid | None = None,
                 dtype: torch.dtype = torch.float16, region_margin: float | None = None):
        """``specs``: the teacher's feature specs (at least of ``keys``); needed to store entries
        (:meth:`build`, :meth:`fill`), not to replay them."""
        if region_margin is not None and bev_grid is None:
            raise ValueError("TeacherCache: region_margin needs the teacher's bev_grid")
        self.specs = {k: specs[k] for k in keys if k in specs} if specs is not None else None
        kinds = self.kinds
        self.region_margin = region_margin
        fingerprint = fingerprint if region_margin is None else f"{fingerprint}|region{float(region_margin)}"
        self.root = Path(root)
        self.entries = self.root / "entries"
        self.fingerprint, self.keys, self.bev_grid, self.dtype = fingerprint, list(keys), bev_grid, dtype
        self.invalidated = False
        manifest = self._read_manifest()
        if manifest is not None and (manifest.get("fingerprint") != fingerprint or manifest.get("keys") != self.keys
                                     or manifest.get("format") != FORMAT
                                     or (kinds is not None and manifest.get("kinds") != kinds)):
            self.clear()
            self.invalidated = True
            manifest = None
        if manifest is not None and bev_grid is None and manifest.get("bev_grid"):
            self.bev_grid = BEVGrid(*manifest["bev_grid"])
        if manifest is None:
            self._write_manifest()

    @classmethod
    def for_teacher(cls, root, teacher: torch.nn.Module, terms, **kw) -> "TeacherCache":
        from kd3d.distill.specs import model_specs

        return cls(root, fingerprint=fingerprint(teacher, terms), keys=required_teacher_keys(terms),
                   specs=model_specs(teacher), bev_grid=getattr(teacher, "bev_grid", None), **kw)

    @property
    def kinds(self) -> dict | None:
        """key -> spec kind of the stored features (None without specs); recorded in the manifest."""
        return None if self.specs is None else {k: v.kind for k, v in self.specs.items()}

    # ------------------------------------------------------------- manifest
    def _read_manifest(self):
        path = self.root / "manifest.json"
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CacheCorruptError(f"teacher cache manifest {path} is not valid JSON ({exc}); delete the folder") from exc

    def _write_manifest(self) -> None:
        self.entries.mkdir(parents=True, exist_ok=True)
        g = self.bev_grid
        data = {"format": FORMAT, "fingerprint": self.fingerprint, "keys": self.keys, "kinds": self.kinds,
                "bev_grid": None if g is None else [g.xmin, g.ymin, g.xmax, g.ymax, g.dx, g.dy]}
        self._atomic_write(self.root / "manifest.json", lambda f: f.write(json.dumps(data, indent=1).encode()))

    def clear(self) -> None:
        """Remove every cache entry (and the manifest)."""
        if self.entries.exists():
            for p in self.entries.glob("*.pt"):
                p.unlink()
        (self.root / "manifest.json").unlink(missing_ok=True)

    @staticmethod
    def _atomic_write(path: Path, write) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp_", suffix=path.suffix)
        try:
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    # --------------------------------------------------------------- entries
    def path(self, token: str) -> Path:
        return self.entries / f"{_entry_name(token)}.pt"

    def has(self, token: str) -> bool:
        return self.path(token).exists()

    def __len__(self) -> int:
        return len(list(self.entries.glob("*.pt"))) if self.entries.exists() else 0

    def _crop(self, entry: dict, batch, b: int) -> dict:
        if self.region_margin is None:
            return entry
        grids = {k: v.grid for k, v in (self.specs or {}).items() if v.kind == "bev"}
        return _crop_regions(entry, batch.gt_boxes[b], grids, self.region_margin)

    def write(self, token: str, entry: dict) -> None:
        feats = _to_storage(entry, self.dtype)
        payload = {"token": token, "fingerprint": self.fingerprint, "feats": feats, "checksum": entry_checksum(feats)}
        self._atomic_write(self.path(token), lambda f: torch.save(payload, f))

    def read(self, token: str) -> dict:
        path = self.path(token)
        if not path.exists():
            raise KeyError(f"teacher cache {self.root}: no entry for sample {token!r} (build the cache first)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError) as exc:
            raise CacheCorruptError(f"teacher cache entry {path} (sample {token!r}) is unreadable, truncated or "
                                    f"corrupt: {exc}; delete it or rebuild the cache") from exc
        if not isinstance(payload, dict) or payload.get("fingerprint") != self.fingerprint \
                or payload.get("token") != token or set(payload.get("feats", {})) != set(self.keys):
            raise CacheCorruptError(f"teacher cache entry {path} (sample {token!r}) does not belong to this cache "
                                    f"(token, fingerprint or keys differ); rebuild the cache")
        try:
            digest = entry_checksum(payload["feats"])
        except (TypeError, KeyError, AttributeError, RuntimeError) as exc:
            raise CacheCorruptError(f"teacher cache entry {path} (sample {token!r}) has malformed features ({exc}); "
                                    "delete it or rebuild the cache") from exc
        if payload.get("checksum") != digest:
            raise CacheCorruptError(f"teacher cache entry {path} (sample {token!r}) fails its checksum (stored "
                                    f"{str(payload.get('checksum'))[:12]}, content {digest[:12]}): its bytes were "
                                    "overwritten; delete it or rebuild the cache")
        return payload["feats"]

    @torch.no_grad()
    def build(self, teacher: torch.nn.Module, loader, *, overwrite: bool = False, device=None) -> int:
        """Run ``teacher`` (eval, no grad) over ``loader`` (yielding Batch) and store every sample
        not cached yet (all with ``overwrite``). Returns the number of entries written."""
        teacher.eval()
        written = 0
        for batch in loader:
            tokens = [s.token for s in batch.samples]
            if not overwrite and all(self.has(t) for t in tokens):
                continue
            if device is not None:
                batch = batch.to(device)
            out = teacher(batch)
            entries = _split(out.feats, self.keys, batch, len(tokens), self.specs)
            for b, (token, entry) in enumerate(zip(tokens, entries)):
                if overwrite or not self.has(token):
                    self.write(token, self._crop(entry, batch, b))
                    written += 1
        return written

    @torch.no_grad()
    def fill(self, teacher: torch.nn.Module, batch) -> int:
        """Run ``teacher`` on ``batch`` and store the samples not cached yet; returns how many.

        Cached features are tied to the sample token, so the inputs must be deterministic: a
        batch with a BEV augmentation (``bev_aug`` not identity) cannot be cached.
        """
        tokens = [s.token for s in batch.samples]
        missing = [t for t in tokens if not self.has(t)]
        if not missing:
            return 0
        aug = getattr(batch, "bev_aug", None)
        if aug is not None and not torch.allclose(aug.float().cpu(), torch.eye(4).expand_as(aug.cpu()), atol=1e-6):
            raise ValueError(f"teacher cache {self.root}: batch {tokens} is augmented (bev_aug != identity); "
                             "cached teacher features would not match. Disable train augmentation or the cache")
        teacher.eval()
        out = teacher(batch)
        entries = _split(out.feats, self.keys, batch, len(tokens), self.specs)
        for b, (token, entry) in enumerate(zip(tokens, entries)):
            if token in missing:
                self.write(token, self._crop(entry, batch, b))
        return len(missing)

    def output_for(self, batch, device=None) -> ModelOutput:
        """The cached teacher ``ModelOutput`` (float32) for ``batch``, collated like the model's."""
        if device is None and getattr(batch, "points", None):
            device = batch.points[0].device
        entries = [self.read(s.token) for s in batch.samples]
        feats = {}
        for key in self.keys:
            items = [e[key] for e in entries]
            kind = items[0]["kind"]
            if kind == "sparse":
                idx = torch.cat([torch.nn.functional.pad(it["indices"], (1, 0), value=b) for b, it in enumerate(items)])
                f = torch.cat([it["features"] for it in items]).float()
                feats[key] = sparse_tensor(f.to(device), idx.to(device), items[0]["spatial_shape"], len(items))
            else:
                data = [_from_cells(it) if it["kind"] == "dense_cells" else it["data"] for it in items]
                feats[key] = torch.cat(data).float().to(device)
        return ModelOutput(feats=feats)
