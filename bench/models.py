"""Benchmark: BEV pooling vs the naive reference, and the train step time of every model, in one run.

1. ``bench/bev_pool.py``'s comparison (kd3d.ops.bev_pool vs the materialised frustum
   reference: forward + backward time and peak memory, nuScenes camera geometry).
2. Per model config (default: the ``configs/synth`` models): parameters, median wall time of a
   full train step (forward, loss, backward, AdamW step, through the engine's ``TrainStep``)
   and its peak memory, on real batches of generated synthetic nuScenes data.

Run: ``python3 bench/models.py [--data-root DIR] [--steps 3] [--batch 1] [--configs synth/lidar_teacher ...]``.
Without ``--data-root`` a small synthetic nuScenes set is generated in a temp folder first.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bev_pool import PeakMemory, bench_bev_pool  # noqa: E402  (bench/bev_pool.py)

DEFAULT_CONFIGS = (
    "synth/lidar_teacher", "synth/lidar_student_050", "synth/lidar_student_025", "synth/lidar_teacher_pillar",
    "synth/pillar_student_050", "synth/camera_student", "synth/fusion_teacher", "synth/seg_teacher",
    "synth/seg_student_050",
)


def _batches(cfg, n: int):
    from kd3d.engine.builders import build_dataset
    from kd3d.engine.data import SeededDataset, make_loader

    ds = SeededDataset(build_dataset(cfg.data, cfg.data.train_split, train=True), seed=0)
    loader, _ = make_loader(ds, batch_size=cfg.data.batch_size, shuffle=True, seed=0, rank=0, world_size=1,
                            num_workers=0, drop_last=True)
    out = []
    while len(out) < n:
        for b in loader:
            out.append(b)
            if len(out) == n:
                break
    return out


def bench_train_step(name: str, data_root: str, steps: int, batch: int) -> dict:
    from kd3d.engine.builders import TrainStep, build_optimizer
    from kd3d.models.build import build_model
    from kd3d.engine.config import load_config, override

    cfg = load_config(name)
    cfg = override(cfg, {"data.root": data_root, "data.batch_size": batch})
    torch.manual_seed(0)
    model = build_model(cfg.model)
    step = TrainStep(model).train()
    opt = build_optimizer(cfg.optim, model)
    batches = _batches(cfg, steps + 1)

    def run(b):
        losses = step(b)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    run(batches[0])  # warm-up
    times = []
    for b in batches[1:-1] or batches[:1]:
        t0 = time.perf_counter()
        run(b)
        times.append(time.perf_counter() - t0)
    with PeakMemory(torch.device("cpu")) as mem:
        t0 = time.perf_counter()
        run(batches[-1])
        times.append(time.perf_counter() - t0)
    return {"params_m": sum(p.numel() for p in model.parameters()) / 1e6, "step_s": statistics.median(times),
            "peak_mib": mem.peak_mib}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=None, help="synthetic nuScenes root (default: generate one)")
    ap.add_argument("--configs", nargs="*", default=list(DEFAULT_CONFIGS))
    ap.add_argument("--steps", type=int, default=3, help="timed train steps per model (after 1 warm-up)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--skip-bev-pool", action="store_true")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu")
    if not args.skip_bev_pool:
        bench_bev_pool(batch=1, channels=80, repeats=3, device="cpu")
    tmp = None
    root = args.data_root
    if root is None:
        from kd3d.data.synth import generate_nuscenes

        tmp = tempfile.TemporaryDirectory(prefix="kd3d_bench_")
        root = tmp.name
        print(f"generating synthetic nuScenes in {root} ...")
        generate_nuscenes(root, scenes=2, samples_per_scene=3, seed=0, image_size=(352, 128), sweeps=2,
                          progress=False)
    print(f"\ntrain step per model (batch {args.batch}, median of {args.steps}):")
    print(f"  {'config':<30}{'params M':>10}{'step s':>10}{'peak MiB':>10}")
    for name in args.configs:
        r = bench_train_step(name, root, args.steps, args.batch)
        print(f"  {name:<30}{r['params_m']:>10.2f}{r['step_s']:>10.2f}{r['peak_mib']:>10.0f}", flush=True)
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
