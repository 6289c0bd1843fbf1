"""Distillation overhead: training-step time of each distilled student vs its baseline student,
with the teacher run live and with the teacher read from the cache, side by side in one process.

For every method config of a suite, on the same fixed batches (validation transforms, so the
teacher cache applies):

* ``baseline``  the student alone: forward, loss, backward, AdamW step;
* ``live``      the Distiller (teacher forward under no_grad + student + terms), same step;
* ``cached``    the Distiller reading the teacher's features from a filled TeacherCache.

Prints milliseconds per step and the ratios live/baseline and cached/baseline (the measurement is
``bench/cost.py``'s :func:`step_overhead`, which also records it for ``bench/report.py``). Teachers are
randomly initialised (timing does not depend on the weights)::

    python3 bench/distill_overhead.py --suite synth-camera --data-root datasets/synth/nuscenes
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from distill import SUITES  # noqa: E402  (bench/distill.py)


def measure(config_name: str, *, data_root: str, batches: int, batch_size: int, repeats: int) -> dict:
    from cost import _frames, step_overhead  # bench/cost.py: the one step-overhead measurement
    from kd3d.engine.config import load_config, override

    cfg = load_config(config_name)
    if data_root:
        cfg = override(cfg, {"data.root": data_root})
    r = step_overhead(cfg, _frames(cfg, batches * batch_size, batch_size), repeats=repeats)
    return {"config": config_name, "baseline_ms": r["step_ms_baseline"], "live_ms": r["step_ms_live"],
            "cached_ms": r["step_ms_cached"], "live_ratio": r["overhead_live"], "cached_ratio": r["overhead_cached"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--suite", choices=[s for s in SUITES if s != "toy"], default="synth-camera")
    p.add_argument("--data-root", default="", help="dataset root (default: the configs')")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args(argv)
    suite = SUITES[args.suite]
    print(f"suite {args.suite}: median step time over {args.batches} batches x {args.repeats} repeats "
          f"(batch size {args.batch_size}), live teacher vs teacher cache")
    print(f"{'method':<16}{'baseline ms':>12}{'live ms':>10}{'cached ms':>11}{'live/base':>11}{'cached/base':>13}")
    for label, name in suite["methods"].items():
        r = measure(name, data_root=args.data_root, batches=args.batches, batch_size=args.batch_size,
                    repeats=args.repeats)
        print(f"{label:<16}{r['baseline_ms']:>12.0f}{r['live_ms']:>10.0f}{r['cached_ms']:>11.0f}"
              f"{r['live_ratio']:>10.2f}x{r['cached_ratio']:>12.2f}x", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
