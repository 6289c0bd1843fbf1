"""CPU thread count vs the time of a LiDAR teacher train step, side by side in one process.

Times a full train step (forward, loss, backward, AdamW step) of ``synth/lidar_teacher`` (batch 2
by default) on generated synthetic nuScenes data under several thread settings, interleaved
round by round so that the machine's load hits every variant alike, and prints the median step
time of each and its ratio to the first. The load average is printed next to every round::

    python3 bench/threads.py                   # variants: default threads, 1 thread
    python3 bench/threads.py --rounds 5 --threads 1 2 4 --no-toggle

Variants: ``N threads`` runs torch with N intra-op threads; spconv's CPU gather/scatter still runs
single-threaded (kd3d's shim switches to 1 thread around it: its kernels race with more). With
``--no-toggle`` each N > 1 also runs once without that switch, to show what the switching costs
(results of that variant may be wrong: timing only).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _load():
    return os.getloadavg()[0]


def _setup(config: str, data_root: str, batch: int, n_batches: int):
    from kd3d.engine.builders import TrainStep, build_dataset, build_optimizer
    from kd3d.engine.config import load_config, override
    from kd3d.engine.data import SeededDataset, make_loader
    try:
        from kd3d.models.build import build_model
    except ImportError:  # older trees kept the registry in the engine
        from kd3d.engine.builders import build_model

    cfg = override(load_config(config), {"data.root": data_root, "data.batch_size": batch})
    ds = SeededDataset(build_dataset(cfg.data, cfg.data.train_split, train=True), seed=0)
    loader, _ = make_loader(ds, batch_size=batch, shuffle=True, seed=0, rank=0, world_size=1, num_workers=0,
                            drop_last=True)
    batches = []
    while len(batches) < n_batches:
        batches.extend(list(loader)[: n_batches - len(batches)])
    torch.manual_seed(0)
    model = build_model(cfg.model)
    step = TrainStep(model).train()
    opt = build_optimizer(cfg.optim, model)

    def run(b):
        losses = step(b)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return run, batches


def _toggle(enabled: bool) -> None:
    """Switch kd3d's per-call single-thread guard around spconv's CPU kernels on/off (bench only)."""
    from kd3d.ops import spconv as shim

    shim.get_spconv()
    if hasattr(shim, "_SPCONV_GUARD"):
        shim._SPCONV_GUARD["enabled"] = enabled
    elif not enabled:
        raise SystemExit("--no-toggle: this kd3d has no switch for the spconv thread guard")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="synth/lidar_teacher")
    ap.add_argument("--data-root", default=None, help="synthetic nuScenes root (default: generate one)")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per variant and round")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over all variants (interleaved)")
    ap.add_argument("--threads", type=int, nargs="*", default=None,
                    help="thread counts to compare (default: torch's default, then 1)")
    ap.add_argument("--no-toggle", action="store_true", help="also time N > 1 without the spconv guard (unsafe)")
    args = ap.parse_args(argv)
    default = torch.get_num_threads()
    counts = args.threads or [default, 1]
    variants = [(n, True) for n in counts] + ([(n, False) for n in counts if n > 1] if args.no_toggle else [])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    try:
        from kd3d.engine.dist import auto_cpu_threads
        auto = f"kd3d's auto choice: {auto_cpu_threads(1)}"
    except ImportError:  # before runtime.threads existed
        auto = "no kd3d auto choice"
    print(f"torch {torch.__version__}: default {default} threads ({auto}), {os.cpu_count()} CPUs, {cores} usable; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; load {_load():.2f}", flush=True)
    tmp = None
    root = args.data_root
    if root is None:
        from kd3d.data.synth import generate_nuscenes

        tmp = tempfile.TemporaryDirectory(prefix="kd3d_threads_")
        root = tmp.name
        generate_nuscenes(root, scenes=2, samples_per_scene=3, seed=0, image_size=(352, 128), sweeps=2,
                          progress=False)
    run, batches = _setup(args.config, root, args.batch, args.steps + 1)
    torch.set_num_threads(counts[0])
    run(batches[0])  # warm-up (allocations, spconv tuning)
    times = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            n, guard = v
            torch.set_num_threads(n)
            _toggle(guard)
            run(batches[0])  # one untimed step after a switch
            for b in batches[1:]:
                t0 = time.perf_counter()
                run(b)
                times[v].append(time.perf_counter() - t0)
        print(f"round {r + 1}/{args.rounds}: load {_load():.2f}  " + "  ".join(
            f"{n}t{'' if g else '-noguard'} {statistics.median(times[(n, g)][-args.steps:]):.2f}s" for n, g in variants),
            flush=True)
    _toggle(True)
    torch.set_num_threads(default)
    base = statistics.median(times[variants[0]])
    print(f"\n{args.config}, batch {args.batch}, median of {args.rounds * args.steps} steps, load {_load():.2f}:")
    for n, guard in variants:
        med = statistics.median(times[(n, guard)])
        name = f"{n} thread{'s' if n > 1 else ''}" + ("" if guard else " (no spconv guard, unsafe)")
        print(f"  {name:<36}{med:8.2f} s/step   x{med / base:.2f} vs {variants[0][0]} threads")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
