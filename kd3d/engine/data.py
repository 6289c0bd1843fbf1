"""Deterministic, resumable data loading.

Exact resume needs the same samples in the same order with the same augmentation after a
restart. Two pieces give that:

* :class:`ResumableSampler` draws the epoch's permutation from ``(seed, epoch)`` only, shards it
  over ranks like ``DistributedSampler`` (rank r takes positions r, r + W, ...), and can start
  part-way through an epoch (``set_start``).
* :class:`SeededDataset` seeds Python's ``random``, numpy's global RNG and torch's CPU RNG from
  ``(seed, epoch, index)`` around every ``__getitem__``, so random augmentations depend on the
  sample alone, not on worker count or on what ran before. In the main process the previous
  RNG states are restored afterwards (the model's RNG stream is untouched). Transforms that own
  their generators (``kd3d.data.transforms``: ``dataset.transforms.reseed``) are reseeded with
  ``[seed, epoch, index]`` before each sample.
"""
from __future__ import annotations

import random

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from kd3d.structures.sample import collate


def _mix(*values: int) -> int:
    """A 63-bit seed from integers (SplitMix-style mixing; stable across runs and platforms)."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class SeededDataset(Dataset):
    """Wraps a map-style dataset of :class:`~kd3d.structures.sample.Sample` (see module doc)."""

    def __init__(self, dataset, *, seed: int):
        self.dataset = dataset
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        s = _mix(self.seed, self.epoch, index)
        saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
        random.seed(s)
        np.random.seed(s % (2**32))
        torch.manual_seed(s)
        transforms = getattr(self.dataset, "transforms", None)
        if transforms is not None and hasattr(transforms, "reseed"):
            transforms.reseed([self.seed, self.epoch, int(index)])
        try:
            return self.dataset[index]
        finally:
            random.setstate(saved[0])
            np.random.set_state(saved[1])
            torch.set_rng_state(saved[2])

    def __getattr__(self, name):  # expose the wrapped dataset's attributes (class names, ...)
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)


class ResumableSampler(Sampler[int]):
    """Indices of one rank for one epoch.

    ``shuffle``: permutation from ``torch.Generator().manual_seed(seed + epoch)``; otherwise
    ``range(n)``. The list is padded (wrapping around) to a multiple of ``world_size`` as in
    ``DistributedSampler``, or cut to it when ``drop_last``. ``set_start(k)`` skips the first
    ``k`` indices of this rank (resume inside an epoch).
    """

    def __init__(self, n: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_last: bool = False):
        if n <= 0:
            raise ValueError("ResumableSampler: the dataset is empty")
        self.n, self.shuffle, self.seed = n, shuffle, int(seed)
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_start(self, start: int) -> None:
        self.start = int(start)

    def rank_indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        w = self.world_size
        if self.drop_last:
            idx = idx[: len(idx) - len(idx) % w]
        elif len(idx) % w:
            pad = w - len(idx) % w
            idx = idx + (idx * (pad // len(idx) + 1))[:pad]
        return idx[self.rank::w]

    def __iter__(self):
        return iter(self.rank_indices()[self.start:])

    def __len__(self) -> int:
        return max(0, len(self.rank_indices()) - self.start)


def _worker_init(worker_id: int) -> None:  # pragma: no cover - runs in worker processes
    torch.set_num_threads(1)


def make_loader(dataset, *, batch_size: int, shuffle: bool, seed: int, rank: int, world_size: int,
                num_workers: int, drop_last: bool) -> tuple[DataLoader, ResumableSampler]:
    """A DataLoader over ``dataset`` (already a :class:`SeededDataset` or any Sample dataset)
    with a :class:`ResumableSampler`; batches are :class:`~kd3d.structures.sample.Batch`.

    The loader gets its own ``torch.Generator`` so creating an iterator never consumes the
    global torch RNG (that would break exact resume)."""
    sampler = ResumableSampler(len(dataset), shuffle=shuffle, seed=seed, rank=rank, world_size=world_size,
                               drop_last=drop_last)
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, collate_fn=collate,
        drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_worker_init if num_workers > 0 else None, persistent_workers=False,
    )
    return loader, sampler
