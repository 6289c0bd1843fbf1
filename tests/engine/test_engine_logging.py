"""The ``kd3d`` logger's stderr handler keeps working after the stream it was made on is closed
(a test's captured ``sys.stderr``): a later run's log lines must not turn into logging errors."""
import io
import sys

from kd3d.engine.logging import get_logger


def test_stderr_handler_outlives_a_closed_stream(monkeypatch):
    log = get_logger()
    handler = next(h for h in log.handlers if getattr(h, "_kd3d_stream", False))
    closed = io.StringIO()
    closed.close()
    failures = []
    monkeypatch.setattr(handler, "handleError", failures.append)
    monkeypatch.setattr(handler, "stream", closed)  # restored afterwards
    log.warning("written after the stream was closed")
    assert not failures and handler.stream is sys.__stderr__
