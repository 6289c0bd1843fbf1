"""Count aborts at the end of 2-rank gloo training runs launched by ``torchrun``.

Each launch trains the toy config (in-memory dataset, a few seconds) as two gloo ranks on the CPU
and checks that the launcher exits 0 and that no rank printed ``terminate called`` (the C++
abort of gloo threads racing interpreter teardown) or was killed by a signal::

    python3 bench/ddp_exit.py            # 50 launches
    python3 bench/ddp_exit.py -n 10 --steps 4

Prints one line per failed launch (exit code and the offending stderr line) and the totals.
Exit status: 0 when every launch was clean, 1 otherwise.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's kd3d, also for the launched ranks (PYTHONPATH below)
ABORT_MARKERS = ("terminate called", "Aborted", "core dumped", "Signal 6", "SIGABRT", "exitcode  : -6")


def toy_config() -> str:
    """Path or name of the toy experiment (test scaffolding in ``kd3d.testing`` when present)."""
    if (ROOT / "configs" / "toy.py").exists():  # older trees shipped it as a config
        return "toy"
    from kd3d.testing import toy_config_path

    return str(toy_config_path())


def launch(work_dir: Path, *, config: str, nproc: int, steps: int, timeout: int,
           extra=()) -> tuple[int, str, float]:
    """One torchrun launch of ``kd3d train toy``; returns (exit code, stderr, seconds)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
           "--master_port", "0", "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0",
           "-m", "kd3d.cli.main", "train", config, "--work-dir", str(work_dir),
           "--set", f"optim.max_steps={steps}", "--set", "data.batch_size=1",
           "--set", "runtime.progress=false", *extra]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=work_dir.parent)
    except subprocess.TimeoutExpired as exc:
        err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        return -999, err + "\n[timeout]", time.perf_counter() - t0
    return out.returncode, out.stderr, time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", "--runs", type=int, default=50, help="number of launches (default 50)")
    ap.add_argument("--nproc", type=int, default=2, help="ranks per launch (default 2)")
    ap.add_argument("--steps", type=int, default=4, help="training steps per launch (default 4)")
    ap.add_argument("--config", default=None, help="config to train (default: the toy config)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for every launch (repeatable)")
    ap.add_argument("--timeout", type=int, default=180, help="seconds per launch before it counts as hung")
    args = ap.parse_args(argv)
    config = args.config or toy_config()
    failures = aborts = 0
    seconds = []
    with tempfile.TemporaryDirectory(prefix="kd3d_ddp_exit_") as tmp:
        for i in range(args.runs):
            rc, err, sec = launch(Path(tmp) / f"run{i:03d}", config=config, nproc=args.nproc, steps=args.steps,
                             timeout=args.timeout, extra=[a for kv in args.overrides for a in ("--set", kv)])
            seconds.append(sec)
            aborted = any(m in err for m in ABORT_MARKERS)
            aborts += aborted
            if rc != 0 or aborted:
                failures += 1
                line = next((ln for ln in err.splitlines() if any(m in ln for m in ABORT_MARKERS)),
                            next((ln for ln in err.splitlines() if "error" in ln.lower()), err[-200:]))
                print(f"run {i}: exit {rc}{' (abort)' if aborted else ''}: {line.strip()[:200]}", flush=True)
    mean = sum(seconds) / max(1, len(seconds))
    print(f"{args.runs} launches x {args.nproc} ranks: {failures} failed (exit != 0 or abort), "
          f"{aborts} with an abort message; {mean:.1f} s per launch; load {os.getloadavg()[0]:.2f}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
