"""The audit log: one line per security event on the logger `python_est.audit`.

Every audit line is written by `audit`, so every one has the same shape. The plain format shows
the message, which starts with the event; the JSON format (`cli.logs`) adds `event`, `result`
and each fact as a key of its own, in the order given. Operators grep both: a line's words, its
facts and their order are an interface, pinned by tests/unit/test_audit.py.

Client-derived values are escaped by the log formatters, not here, so no caller can forget it.
"""

from __future__ import annotations

import logging

_log = logging.getLogger("python_est.audit")


def audit(
    event: str, result: str, summary: str | None = None, /, *args: object, **facts: object
) -> None:
    """Log one audit event.

    Args:
        event: what was attempted (enroll, reenroll, serverkeygen, revoke, approve, reject).
        result: what came of it (issued, held, fulfilled, refused, revoked, approved, ...).
        summary, args: the plain line after "event result", as a %-format and its arguments
            (formatted only when the line is logged). Without a summary, the line is the event
            followed by `key=repr(value)` for the result and each fact (the operator commands'
            form).
        facts: the event's facts, for the JSON format (none may be named like a `LogRecord`
            attribute, such as `message`).
    """
    fields = {"event": event, "result": result, **facts}
    if summary is not None:
        _log.info("%s %s " + summary, event, result, *args, extra=fields)
        return
    shown = [key for key in fields if key != "event"]
    line = " ".join(f"{key}=%r" for key in shown)
    _log.info("%s " + line, event, *(fields[key] for key in shown), extra=fields)
