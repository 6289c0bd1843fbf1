"""The benchmark's results file: one JSON line per finished run, appended, never rewritten.

``bench/results/distill_v2.jsonl`` (committed) is the only input of ``bench/report.py``. A line is
one of

* ``{"kind": "run", "id", "suite", "arm", "seed", "steps", "config", "overrides", "teacher",
  "metrics", "heldout", "seconds", "commit", "date", "host"}`` -- a trained and evaluated student
  (``arm == "baseline"`` for the suite's baseline) or teacher (``kind == "teacher"``, seed 0);
* ``{"kind": "cost", "id", "suite", "arm", "config", ...}`` -- the cost columns of one model
  (``bench/cost.py``).

``id`` is the run's identity (suite, arm, seed, steps, config, overrides, teacher): a run whose id
is in the file is finished and skipped. Work is shared between processes by claiming a run with
a lock file (``O_CREAT | O_EXCL``) holding ``host pid``; a lock whose process is gone (same host)
is stale and is taken over, the run then resumes from its last checkpoint.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RESULTS = ROOT / "bench" / "results" / "distill_v2.jsonl"


def run_id(kind: str, suite: str, arm: str, seed: int, steps: int, config: str, overrides: dict,
           teacher: dict | None = None) -> str:
    """Readable identity ``suite/arm/s<seed>/<steps>/<hash>``; the hash covers config, overrides
    and the teacher (config + steps), so a changed arm is a new run."""
    blob = json.dumps({"kind": kind, "config": config, "overrides": overrides, "teacher": teacher}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return f"{kind}:{suite}/{arm}/s{seed}/{steps}/{digest}"


def read_records(path: str | Path) -> list[dict]:
    """Every record of the results file (``[]`` when it does not exist). A line that is not JSON
    (cut by a crash mid-write) is skipped with a warning naming file and line: that run counts as
    not finished and runs again."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            print(f"warning: {path}:{n}: not a JSON line ({e.msg}), skipped", file=sys.stderr)
    return out


def find(path: str | Path, rid: str) -> dict | None:
    """The record with id ``rid`` (the last one if repeated), or None."""
    hit = None
    for rec in read_records(path):
        if rec.get("id") == rid:
            hit = rec
    return hit


def git_commit() -> str:
    """The checkout's commit (short hash, ``+dirty`` when tracked files differ), or ``unknown``."""
    try:
        sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "diff", "--quiet", "HEAD", "--", "kd3d", "configs"],
                               capture_output=True, timeout=10).returncode != 0
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("+dirty" if dirty else "")) if sha else "unknown"


def append(path: str | Path, record: dict) -> dict:
    """Append ``record`` (stamped with commit, date, host) as one line under an exclusive lock."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rec = {**record, "commit": record.get("commit") or git_commit(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "host": socket.gethostname()}
    line = json.dumps(rec, sort_keys=True) + "\n"
    with path.open("a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:  # a line cut by a crash must not swallow this one
                f.seek(f.tell() - 1)
                if f.read(1) != "\n":
                    line = "\n" + line
            f.write(line)
            f.flush()
            os.fsync(f.fileno())
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
    return rec


def claim(lock: str | Path) -> bool:
    """Claim a run: create ``lock`` exclusively (``host pid``). A lock left by a dead process of
    this host is replaced (the caller then resumes the run). False when a live worker holds it."""
    from kd3d.models.checkpoint import pid_alive  # here: keeps runlog (and bench/report.py) free of torch

    lock = Path(lock)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(str(lock), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            # judge and remove under a lock on the folder: two workers that both found the same
            # stale lock must not both remove it (the second would remove the first one's new claim)
            dir_fd = os.open(str(lock.parent), os.O_RDONLY)
            try:
                fcntl.flock(dir_fd, fcntl.LOCK_EX)
                try:
                    host, pid = lock.read_text().split()
                    stale = host == socket.gethostname() and not pid_alive(int(pid))
                except (OSError, ValueError):
                    stale = False  # being written right now, just removed, or not ours to judge
                if not stale:
                    return False
                lock.unlink(missing_ok=True)
            finally:
                os.close(dir_fd)  # releases the flock
            continue
        os.write(fd, f"{socket.gethostname()} {os.getpid()}".encode())
        os.close(fd)
        return True
    return False


def release(lock: str | Path) -> None:
    Path(lock).unlink(missing_ok=True)


def shard(index: int, worker: tuple[int, int]) -> bool:
    """Whether job ``index`` belongs to ``worker`` = (i, n) (round robin); (0, 1) takes all."""
    i, n = worker
    return index % n == i


def parse_worker(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise SystemExit(f"--worker {spec!r}: expected I/N, e.g. 0/2") from None
    if not 0 <= i < n:
        raise SystemExit(f"--worker {spec!r}: expected 0 <= I < N")
    return i, n
