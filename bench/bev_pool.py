"""Benchmark: kd3d.ops.bev_pool vs the materialised reference, side by side in one run.

Geometry: the nuScenes camera preset (6 ring cameras, 900 x 1600 originals resized to 256 x 704,
stride 16 -> 16 x 44 features, 59 depth bins 1..60 m, BEV 128 x 128 at 0.8 m), C = 80 context
channels, forward + backward of ``sum(bev * g)``.

Time: median wall time over ``repeats`` runs (index cached for the fast op, as for a fixed rig;
one uncached build is timed separately). Peak memory: CPU peak resident set above the level
before the call (glibc ``malloc_trim``, then Linux ``VmHWM`` reset through
``/proc/self/clear_refs``); on CUDA
``torch.cuda.max_memory_allocated``.

Run: ``python3 bench/bev_pool.py [--batch 1] [--channels 80] [--device cpu|cuda]``.
"""
from __future__ import annotations

import argparse
import ctypes
import re
import statistics
import time

import numpy as np
import torch

from kd3d.models.camera.rig import ring_rig, scale_crop_aug
from kd3d.models.camera.view_transformer import DepthBins, frustum_to_lidar, make_frustum
from kd3d.ops.bev_pool import INDEX_CACHE, bev_pool, bev_pool_naive, build_bev_pool_index
from kd3d.structures.bev import BEVGrid


def _rss_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        return int(re.search(rf"{field}:\s+(\d+)", fh.read()).group(1))


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc: the RSS peak may then under-count reused heap memory
        pass


class PeakMemory:
    """Peak memory (MiB) used inside the ``with`` block above the level at its start."""

    def __init__(self, device: torch.device):
        self.device, self.peak_mib = device, float("nan")

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            _malloc_trim()  # hand freed heap pages back, so reused memory shows up in the RSS again
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS
            self.base = _rss_kib("VmRSS") * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = _rss_kib("VmHWM") * 1024
        self.peak_mib = (peak - self.base) / 2**20


def nuscenes_geometry(batch: int, device) -> tuple[torch.Tensor, BEVGrid, int]:
    """(B*6, 59, 16, 44, 3) LiDAR-frame frustum points of the nuScenes preset rig."""
    intr, c2l = ring_rig(6, (900, 1600), hfov_deg=70.0)
    aug = scale_crop_aug(0.48, (32.0, 176.0))  # 900x1600 -> 432x768, crop 256x704 (bottom part)
    fr = make_frustum((256, 704), 16, DepthBins(1.0, 60.0, 1.0))
    rep = lambda a: torch.tensor(np.repeat(a[None], batch, 0), dtype=torch.float32)  # noqa: E731
    geom = frustum_to_lidar(fr, rep(intr), rep(c2l), rep(np.repeat(aug[None], 6, 0)))
    return geom.to(device), BEVGrid(-51.2, -51.2, 51.2, 51.2, 0.8, 0.8), 6


def _step(fn, depth, feat, geom, grid, num_cams, grad):
    d = depth.detach().requires_grad_(True)
    f = feat.detach().requires_grad_(True)
    out = fn(d, f, geom, grid, num_cams=num_cams, z_range=(-5.0, 3.0))
    (out * grad).sum().backward()
    return out.detach(), d.grad, f.grad


def bench_bev_pool(batch: int = 1, channels: int = 80, repeats: int = 5, device: str = "cpu") -> dict:
    """Time and peak memory of bev_pool vs bev_pool_naive (forward + backward); prints a table."""
    dev = torch.device(device)
    geom, grid, nc = nuscenes_geometry(batch, dev)
    n, d, h, w, _ = geom.shape
    gen = torch.Generator().manual_seed(0)
    depth = torch.randn(n, d, h, w, generator=gen).softmax(1).to(dev)
    feat = torch.randn(n, channels, h, w, generator=gen).to(dev)
    grad = torch.randn(batch, channels, *grid.shape, generator=gen).to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    t0 = time.perf_counter()
    index = build_bev_pool_index(geom, grid, num_cams=nc, z_range=(-5.0, 3.0))
    sync()
    index_s = time.perf_counter() - t0
    INDEX_CACHE.clear()
    results = {}
    for name, fn in (("bev_pool", bev_pool), ("naive", bev_pool_naive)):
        outs = _step(fn, depth, feat, geom, grid, nc, grad)  # warm-up (builds the cached index)
        times = []
        for _ in range(repeats):
            sync()
            t0 = time.perf_counter()
            _step(fn, depth, feat, geom, grid, nc, grad)
            sync()
            times.append(time.perf_counter() - t0)
        with PeakMemory(dev) as mem:
            _step(fn, depth, feat, geom, grid, nc, grad)
        results[name] = {"time_s": statistics.median(times), "peak_mib": mem.peak_mib, "outs": outs}
    errs = [(a - b).abs().max().item() for a, b in zip(results["bev_pool"]["outs"], results["naive"]["outs"])]
    fast, ref = results["bev_pool"], results["naive"]
    print(f"bev_pool benchmark on {device}: N={n} D={d} H={h} W={w} C={channels}, BEV {grid.ny}x{grid.nx}, "
          f"{index.num_points} frustum points in range ({index.pair_cell.numel()} cell-pixel pairs)")
    print(f"  index build (uncached): {index_s * 1e3:.1f} ms")
    print(f"  {'op':<10}{'fwd+bwd ms':>12}{'peak MiB':>12}")
    for name in ("bev_pool", "naive"):
        r = results[name]
        print(f"  {name:<10}{r['time_s'] * 1e3:>12.1f}{r['peak_mib']:>12.1f}")
    print(f"  ratio naive/bev_pool: time {ref['time_s'] / fast['time_s']:.2f}x, "
          f"peak memory {ref['peak_mib'] / max(fast['peak_mib'], 1e-3):.2f}x")
    print(f"  max abs difference (bev, grad depth, grad feat): {errs[0]:.2e} {errs[1]:.2e} {errs[2]:.2e}")
    return {
        "time_s": {k: v["time_s"] for k, v in results.items()}, "peak_mib": {k: v["peak_mib"] for k, v in results.items()},
        "index_s": index_s, "max_abs_diff": errs,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--channels", type=int, default=80)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    bench_bev_pool(args.batch, args.channels, args.repeats, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
