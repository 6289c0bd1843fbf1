"""Distributed helpers for ``torchrun`` (gloo on CPU, NCCL on CUDA).

Single-process runs need no setup: every helper degrades to the identity when
``torch.distributed`` is not initialised.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env(device: torch.device) -> bool:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

    Backend: NCCL for a CUDA ``device`` (binding ``LOCAL_RANK``'s GPU), gloo otherwise.
    Returns True when running distributed.
    """
    if is_dist():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available else ``cpu``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("runtime.device='cuda' but CUDA is not available (use 'auto' or 'cpu')")
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    if name != "cpu":
        raise ValueError(f"runtime.device: expected 'auto', 'cpu' or 'cuda', got {name!r}")
    return torch.device("cpu")


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_gather_object(obj) -> list:
    """Gather a picklable object from every rank (list in rank order; ``[obj]`` alone)."""
    if not is_dist():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def reduce_mean(values: dict[str, float], device: torch.device) -> dict[str, float]:
    """Average a dict of scalars over ranks (same keys on every rank)."""
    if not is_dist() or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    t /= world_size()
    return dict(zip(keys, t.tolist()))


def cleanup() -> None:
    if is_dist():
        dist.destroy_process_group()
