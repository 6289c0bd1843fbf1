"""bench/runlog.py: claims (a live worker's lock is respected, a dead one's taken over), append
and read of the results file, a line cut by a crash skipped with a warning (its run runs again)."""
import importlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
runlog = importlib.import_module("runlog")


def test_claims(tmp_path):
    lock = tmp_path / "locks" / "a.lock"
    assert runlog.claim(lock) and lock.read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not runlog.claim(lock)  # held by a live process (this one)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{socket.gethostname()} {dead.pid}")
    assert runlog.claim(lock)  # a dead worker's claim is taken over
    lock.write_text(f"some-other-host {dead.pid}")
    assert not runlog.claim(lock)  # another host's process cannot be checked: respected
    runlog.release(lock)
    assert not lock.exists() and runlog.claim(lock)


def test_append_find_and_damaged_line(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    assert runlog.read_records(path) == [] and runlog.find(path, "x") is None
    runlog.append(path, {"id": "x", "metrics": {"mAP": 0.1}, "commit": "abc"})
    runlog.append(path, {"id": "x", "metrics": {"mAP": 0.2}, "commit": "abc"})
    rec = runlog.find(path, "x")
    assert rec["metrics"]["mAP"] == 0.2 and rec["commit"] == "abc" and {"date", "host"} <= rec.keys()
    with path.open("a") as f:
        f.write('{"id": "y", "metr')  # a line cut by a crash (no newline)
    runlog.append(path, {"id": "z", "commit": "abc"})  # starts on a line of its own
    assert [r["id"] for r in runlog.read_records(path)] == ["x", "x", "z"]
    assert "r.jsonl:3: not a JSON line" in capsys.readouterr().err
    assert runlog.run_id("run", "s", "a", 0, 10, "c", {"k": 1}) != runlog.run_id("run", "s", "a", 0, 10, "c", {"k": 2})
    assert runlog.parse_worker("1/2") == (1, 2)
    with pytest.raises(SystemExit, match="--worker"):
        runlog.parse_worker("2/2")
