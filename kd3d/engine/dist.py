"""Distributed helpers for ``torchrun`` (gloo on CPU, NCCL on CUDA).

Single-process runs need no setup: every helper degrades to the identity when
``torch.distributed`` is not initialised.

Exit: after DDP has been constructed, ``destroy_process_group()`` does not stop gloo's worker
threads; they live until interpreter teardown, where their C++ destructors race the exit and
sometimes abort the process ("terminate called without an active exception", exit -6) after the
run has finished. :func:`finish` makes the end of a ``torchrun``-launched CLI process
deterministic: drop the references, destroy the group, flush every stream and log, then leave
with ``os._exit`` so the racing teardown never runs. Library callers keep the normal exit.
"""
from __future__ import annotations

import gc
import logging
import os
import sys

import torch
import torch.distributed as dist

from kd3d.errors import ConfigError


_initialised_here = False  # this process called init_process_group (a torchrun rank)


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
    global _initialised_here
    _initialised_here = True
    return True


# CPU threads: the thread count is chosen once per process (runtime.threads; 0 = auto) instead of
# torch's default. Measured with bench/threads.py (synth/lidar_teacher train step, batch 2) on a
# 2-core machine: idle (load 1.3), 2 threads 1.55 s and 1 thread 2.55 s (x1.65 slower); kept busy
# by other jobs (load 4.6-5.3), 2 threads 20.0 s and 1 thread 4.4 s (x4.5 faster). Threads that
# wait on descheduled siblings cost far more than they gain, so auto gives every process its
# share of the usable CPUs, and 1 thread when the machine is already busy when the run starts
# (1-minute load average >= usable CPUs: other jobs occupy them). spconv's CPU gather/scatter
# runs single-threaded either way (kd3d.ops.spconv; its cost on the idle machine: 1.55 vs 1.56 s).


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. under ``taskset`` or a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def load_average() -> float:
    """The 1-minute load average (0.0 where the platform has none)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def running_others() -> int:
    """Runnable tasks on this machine now, this process excluded (``/proc/loadavg``'s 4th field;
    0 where the platform has none). Unlike the load average it does not lag: a job started a
    few seconds ago counts."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, running - 1)


def auto_cpu_threads(local_ranks: int = 1, cpus: int | None = None, load: float | None = None,
                     others: int | None = None) -> int:
    """Threads per process for ``runtime.threads = 0``: usable CPUs // processes on this machine,
    at most the CPUs no other running task occupies (``others``: runnable tasks now, this one
    excluded), and 1 when the load average is already >= the usable CPUs (a busy machine: see
    the note above). The 1-minute load average lags: beside a job started a minute ago it reads
    below the CPU count, and a second thread beside that job cost x2.5 (2.9 -> 7.2 s/step)."""
    cpus = usable_cpus() if cpus is None else int(cpus)
    load = load_average() if load is None else float(load)
    others = running_others() if others is None else int(others)
    if load >= cpus:
        return 1
    return max(1, min(cpus // max(1, int(local_ranks)), cpus - others))


_AUTO_CHOICE: dict[int, tuple[int, str]] = {}  # the auto decision of this process, per local process count


def configure_cpu_threads(requested: int, *, local_ranks: int | None = None) -> tuple[int, str]:
    """Set torch's intra-op thread count once for this CPU process; returns ``(threads, why)``.

    ``requested`` > 0: that many. 0 (auto): ``OMP_NUM_THREADS`` from the environment when set,
    else :func:`auto_cpu_threads` for ``local_ranks`` processes (default ``LOCAL_WORLD_SIZE``).
    """
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 0:
        raise ConfigError(f"runtime.threads: expected an integer >= 0 (0 = auto), got {requested!r}")
    if requested > 0:
        n, why = requested, "runtime.threads"
    elif os.environ.get("OMP_NUM_THREADS", "").strip().isdigit() and int(os.environ["OMP_NUM_THREADS"]) > 0:
        n, why = int(os.environ["OMP_NUM_THREADS"]), "OMP_NUM_THREADS"
    else:
        ranks = local_ranks if local_ranks is not None else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if ranks not in _AUTO_CHOICE:  # once per process: runs in one process keep one thread count (bitwise resume)
            cpus, load, others = usable_cpus(), load_average(), running_others()
            _AUTO_CHOICE[ranks] = (auto_cpu_threads(ranks, cpus=cpus, load=load, others=others),
                                   f"auto: {cpus} usable CPUs, {ranks} process(es) on this machine, "
                                   f"load average {load:.1f}, {others} other running task(s)")
        n, why = _AUTO_CHOICE[ranks]
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n, why


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
    """Destroy the process group (no-op without one), after freeing unreachable DDP objects
    (reducers hold the group) so that nothing uses it afterwards."""
    if is_dist():
        gc.collect()
        dist.destroy_process_group()


def launched_here() -> bool:
    """True when this process initialised a process group (a ``torchrun`` rank), even if it has
    been destroyed since."""
    return _initialised_here


def finish(code: int) -> int:
    """End a ``torchrun``-launched CLI process with exit status ``code``, deterministically.

    Returns ``code`` unchanged when this process never initialised a process group (single
    process, tests calling the CLI in-process). Otherwise: destroy the group (see
    :func:`cleanup`), flush stdout/stderr and every logging handler, and ``os._exit(code)``:
    Python's and C++'s teardown, where gloo's leftover threads abort the process, is skipped.
    Call it only once everything the run writes is written (checkpoints, metrics, printed output).
    """
    if not _initialised_here:
        return code
    try:
        cleanup()
    except Exception as exc:  # a failed destroy must not turn a finished run into a hang or a traceback
        logging.getLogger(__name__).error("kd3d: destroying the process group failed: %s", exc)
        code = code or 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing more can be written
            pass
    os._exit(int(code))
