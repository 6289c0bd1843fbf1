"""Training logs: one CSV per stream (``train.csv``, ``eval.csv``) plus TensorBoard scalars.

Only rank 0 writes. A CSV's columns are the union of the keys seen so far (``step`` first); a new
key rewrites the (small) file with the wider header, earlier rows get empty cells.
"""
from __future__ import annotations

import csv
import logging
import math
import sys
from pathlib import Path

_LOGGER_NAME = "kd3d"


class _StderrHandler(logging.StreamHandler):
    """A stream handler on ``sys.stderr`` as it was when the handler was made; once that stream is
    closed (a replaced ``sys.stderr``, e.g. a test's captured stream, that has been closed since),
    records go to the process's own stderr instead of failing with "I/O operation on closed file"."""

    def emit(self, record):
        if getattr(self.stream, "closed", False) and sys.__stderr__ is not None:
            self.stream = sys.__stderr__  # (setStream would flush the closed stream first)
        super().emit(record)


def get_logger(work_dir: str | Path | None = None, main: bool = True) -> logging.Logger:
    """The ``kd3d`` logger: INFO to stderr on rank 0 (WARNING elsewhere), and to
    ``work_dir/train.log`` when given."""
    logger = logging.getLogger(_LOGGER_NAME)
    logger.setLevel(logging.INFO if main else logging.WARNING)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
    if not any(getattr(h, "_kd3d_stream", False) for h in logger.handlers):
        h = _StderrHandler(sys.stderr)
        h.setFormatter(fmt)
        h._kd3d_stream = True
        logger.addHandler(h)
    if work_dir is not None and main:
        path = str((Path(work_dir) / "train.log").resolve())
        for h in list(logger.handlers):  # one run's log file at a time
            if isinstance(h, logging.FileHandler) and h.baseFilename != path:
                logger.removeHandler(h)
                h.close()
        if not any(getattr(h, "baseFilename", None) == path for h in logger.handlers):
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(path)
            fh.setFormatter(fmt)
            logger.addHandler(fh)
    logger.propagate = False
    return logger


class CSVLog:
    """Append rows ``{"step": int, key: float, ...}`` to a CSV file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.columns: list[str] = ["step"]
        self.rows: list[dict] = []
        if self.path.exists():  # resuming: keep the earlier rows
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or ["step"])
                self.rows = list(reader)

    def truncate_after(self, step: int) -> None:
        """Drop rows logged after ``step`` (a resumed run repeats them)."""
        self.rows = [r for r in self.rows if int(float(r["step"])) <= step]
        self._rewrite()

    def _rewrite(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(self.rows)

    def log(self, step: int, values: dict[str, float]) -> None:
        row = {"step": step, **{k: _fmt(v) for k, v in values.items()}}
        new = [k for k in row if k not in self.columns]
        self.rows.append(row)
        if new or not self.path.exists():
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.columns).writerow(row)


def _fmt(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return v


class RunLogger:
    """CSV + TensorBoard for one run (no-op when ``enabled`` is False, i.e. rank != 0)."""

    def __init__(self, work_dir: str | Path, *, enabled: bool = True, tensorboard: bool = True,
                 resume_step: int | None = None):
        self.enabled = enabled
        self.work_dir = Path(work_dir)
        self.csv: dict[str, CSVLog] = {}
        self.tb = None
        if not enabled:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for stream in ("train", "eval"):
            self.csv[stream] = CSVLog(self.work_dir / f"{stream}.csv")
            if resume_step is not None:
                self.csv[stream].truncate_after(resume_step)
            elif self.csv[stream].rows:
                self.csv[stream].rows = []
                self.csv[stream]._rewrite()
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is a dependency
                get_logger().warning("tensorboard is not installed; writing CSV logs only")
            else:
                self.tb = SummaryWriter(str(self.work_dir / "tb"), purge_step=resume_step)

    def log(self, stream: str, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
            return
        scalars = {k: float(v) for k, v in values.items() if isinstance(v, (int, float))}
        self.csv.setdefault(stream, CSVLog(self.work_dir / f"{stream}.csv")).log(step, scalars)
        if self.tb is not None:
            for k, v in scalars.items():
                self.tb.add_scalar(f"{stream}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
