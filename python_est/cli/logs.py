"""Logging set-up: one event per line on stderr, plain or JSON.

Under systemd (`JOURNAL_STREAM` set) the plain format drops the timestamp, which journald adds.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime, timezone

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PLAIN_JOURNAL = "%(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and the exception, if any)."""

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time of each event, not at set-up time."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        # StreamHandler assigns the stream in __init__ and setStream; the live sys.stderr wins.
        pass


def setup_logging(level: str, fmt: str) -> None:
    """Route every python_est logger to stderr at `level` in format `fmt` (plain or json)."""
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif os.environ.get("JOURNAL_STREAM"):
        handler.setFormatter(logging.Formatter(PLAIN_JOURNAL))
    else:
        handler.setFormatter(logging.Formatter(PLAIN))
    root = logging.getLogger("python_est")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
