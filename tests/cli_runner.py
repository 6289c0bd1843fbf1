"""Run ``python -m kd3d.cli.main ...`` as one process or as ``nproc`` torchrun (gloo) ranks."""
import os
import subprocess
import sys


def run_cli(args, cwd, *, common=(), nproc: int = 1, batch_size: int = 2, timeout: int = 240) -> str:
    """Run the kd3d CLI with ``args + common + --set data.batch_size=...``; assert success and
    return stdout. One thread per process (several ranks share the CPU)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    mod = ["-m", "kd3d.cli.main", *args, *common, "--set", f"data.batch_size={batch_size}"]
    if nproc == 1:
        cmd = [sys.executable, *mod]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", "0",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", "localhost:0", *mod]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout
