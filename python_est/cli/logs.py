"""Logging set-up: one event per line on stderr, plain or JSON.

Under systemd (`JOURNAL_STREAM` set) the plain format drops the timestamp, which journald adds.
With several worker processes each line names its process id (journald records the same in
`_PID`; the JSON format always carries `pid`).

Audit events (`python_est.audit.audit`) pass their facts as `extra=` fields: the plain format
shows the message, the JSON format adds every field (`event`, `result`, `serial`, `subject`,
`requester`, `auth`, `label`, ...) as a key of its own.

Every line is one event, whatever a client put into a logged value (issue 13): the plain format
backslash-escapes every non-printable character of the message (`safetext.escape`), so a
newline in a certificate subject cannot start a forged event and an escape sequence cannot
rewrite the operator's terminal; traceback lines are escaped the same way and indented, so none
of them starts like an event. The JSON format escapes what `json.dumps` leaves raw
(`safetext.escape_json`): still valid JSON, one object per line.
"""

from __future__ import annotations

import copy
import getpass
import json
import logging
import os
import sys
import time
from datetime import datetime, timezone
from types import TracebackType

from python_est.audit import audit
from python_est.safetext import escape, escape_json

PLAIN = "%(asctime)s %(levelname)s %(name)s: %(message)s"
PLAIN_JOURNAL = "%(levelname)s %(name)s: %(message)s"
PLAIN_PID = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
PLAIN_JOURNAL_PID = "%(levelname)s %(name)s[%(process)d]: %(message)s"

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, pid, message, `extra=` fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in event:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return escape_json(json.dumps(event, ensure_ascii=False, default=str))


class PlainFormatter(logging.Formatter):
    """`logging.Formatter` whose every event is exactly one line of printable text (and an
    indented, escaped traceback)."""

    # The last second formatted and its text: two lines per enrollment share it, and
    # `time.strftime` is most of what a timestamp costs. One tuple, so threads swap it whole.
    _second: tuple[int, str] = (-1, "")

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        message = escape(record.message)
        if message is record.message:
            return super().formatMessage(record)  # nothing to escape: no copy needed
        safe = copy.copy(record)
        safe.message = message
        return super().formatMessage(safe)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        # What `logging.Formatter.formatTime` writes without datefmt; it depends on the whole
        # second alone (`time.localtime` drops the fraction), and msecs are added per record.
        second = int(record.created)
        cached = self._second
        if cached[0] != second:
            cached = (second, time.strftime(self.default_time_format, self.converter(second)))
            self._second = cached
        if not self.default_msec_format:
            return cached[1]
        return self.default_msec_format % (cached[1], record.msecs)

    def formatException(self, ei: _ExcInfo) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 (logging's name)
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    # An exception's message may hold client text with newlines: each line is escaped on its
    # own and indented, so no line of a traceback begins like an event (a timestamp or level).
    return "\n".join("    " + escape(line) for line in text.split("\n"))


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


def make_formatter(fmt: str, *, pid: bool = False) -> logging.Formatter:
    """The formatter for `fmt` ("plain" or "json") in the current environment."""
    if fmt == "json":
        return JsonFormatter()
    journal = bool(os.environ.get("JOURNAL_STREAM"))
    if pid:
        return PlainFormatter(PLAIN_JOURNAL_PID if journal else PLAIN_PID)
    return PlainFormatter(PLAIN_JOURNAL if journal else PLAIN)


def setup_logging(level: str, fmt: str, *, pid: bool = False) -> None:
    """Route every python_est logger to stderr at `level` in format `fmt` (plain or json).

    Args:
        level: debug, info, warning or error.
        fmt: plain or json.
        pid: name the process in plain lines (several worker processes share stderr).
    """
    handler = StderrHandler()
    handler.setFormatter(make_formatter(fmt, pid=pid))
    root = logging.getLogger("python_est")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def audit_operator_action(
    event: str,
    result: str,
    *,
    serial: str | None,
    subject: str,
    requester: str,
    auth: str,
    label: str,
    **more: str | None,
) -> None:
    """Log what an operator did with a CLI command (revoke, approve, reject) on the audit log.

    Args:
        event: revoke, approve or reject.
        result: what came of it (revoked, approved, rejected, or why nothing happened).
        serial: the certificate's serial in hex, if there is one.
        subject, requester, auth, label: of the certificate or request acted on (who asked for
            it and how they authenticated).
        more: further fields (reason, request id).
    """
    audit(
        event,
        result,
        serial=serial,
        subject=subject,
        requester=requester,
        auth=auth,
        label=label,
        operator=_operator(),
        **more,
    )


def _operator() -> str:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = f"uid {os.getuid()}"
    sudo = os.environ.get("SUDO_USER")
    return f"{sudo} (sudo as {name})" if sudo and sudo != name else name
