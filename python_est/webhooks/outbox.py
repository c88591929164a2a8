"""Issuance notifications: written to a durable outbox first, delivered and retried later.

A notification never delays or undoes an issuance: the certificate is in the ledger and on its
way to the client before anything is sent. `put` only writes one small file (mode 0600) under
the state directory; a courier thread (`python_est.server.courier`) calls `deliver_due`, which
POSTs each due entry once. A failure is logged and the entry is tried again after a doubling
delay, up to `MAX_ATTEMPTS` times; then it moves to `failed/` with an error in the log, kept for
the operator instead of being dropped. Entries left when the server stops are delivered after
its next start.

Several serving processes may share one outbox (pre-forked workers): an entry is delivered by
whoever holds its `flock`, and a holder checks that the path still names the file it locked, so
an entry delivered and removed by one process is never sent again by another.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from python_est.fileio import atomic_write, ensure_private_dir
from python_est.ledger import IssuedCertificate, serial_hex
from python_est.webhooks.endpoint import WebhookFailure

log = logging.getLogger("python_est.webhooks")

MAX_ATTEMPTS = 8
FIRST_DELAY = 1.0
MAX_DELAY = 300.0
FAILED = "failed"

# Delivers one notification of a label, or raises WebhookFailure.
Send = Callable[[str, bytes], None]


def notification_body(entry: IssuedCertificate) -> bytes:
    """The JSON a notification webhook receives about one issued certificate."""
    fields = {
        "event": "issued",
        "label": entry.label,
        "operation": entry.operation,
        "serial": serial_hex(entry.serial),
        "subject": entry.subject,
        "sans": list(entry.sans),
        "not_before": entry.not_before.isoformat(),
        "not_after": entry.not_after.isoformat(),
        "requester": entry.requester,
        "auth_method": entry.auth_method,
        "certificate": entry.pem,
    }
    return json.dumps(fields, ensure_ascii=True, sort_keys=True).encode("ascii")


class Outbox:
    """Notifications not yet delivered, one file each under `directory`.

    Args:
        directory: the outbox (created 0700 on first use).
        first_delay: seconds before the first retry; each later one waits twice as long.
        clock: the current time in seconds since the epoch.
    """

    def __init__(
        self,
        directory: Path,
        *,
        first_delay: float = FIRST_DELAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self._first_delay = first_delay
        self._clock = clock

    def put(self, label: str, body: bytes) -> None:
        """Queue `body` for the label's notification webhook, due now.

        Raises:
            OSError: the entry cannot be written.
        """
        ensure_private_dir(self.directory)
        name = f"{time.time_ns():020d}-{secrets.token_hex(4)}.json"
        entry = {"label": label, "attempts": 0, "due": self._clock(), "body": body.decode()}
        atomic_write(self.directory / name, json.dumps(entry).encode())

    def pending(self) -> list[Path]:
        """The entries waiting, oldest first."""
        if not self.directory.is_dir():
            return []
        return sorted(self.directory.glob("*.json"))

    def deliver_due(self, send: Send) -> float | None:
        """Send every due entry once.

        Returns:
            Seconds until the next entry is due (0 when one is locked by another process),
            or None when the outbox is empty.
        """
        waits: list[float] = []
        for path in self.pending():
            wait = self._try(path, send)
            if wait is not None:
                waits.append(wait)
        return min(waits) if waits else None

    def _try(self, path: Path, send: Send) -> float | None:
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:
            return None  # delivered by another process meanwhile
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return FIRST_DELAY  # another process is sending it; look again soon
            try:
                if os.stat(path).st_ino != os.fstat(fd).st_ino:
                    return None  # replaced or removed after we opened it
            except FileNotFoundError:
                return None
            with os.fdopen(os.dup(fd), "rb") as handle:
                raw = handle.read()
            return self._attempt(path, raw, send)
        finally:
            os.close(fd)

    def _attempt(self, path: Path, raw: bytes, send: Send) -> float | None:
        try:
            entry = json.loads(raw)
            label, attempts, due = str(entry["label"]), int(entry["attempts"]), float(entry["due"])
            body = str(entry["body"]).encode()
        except (ValueError, KeyError, TypeError):
            self._give_up(path, "unreadable entry")
            return None
        now = self._clock()
        if due > now:
            return due - now
        try:
            send(label, body)
        except WebhookFailure as exc:
            attempts += 1
            if attempts >= MAX_ATTEMPTS:
                self._give_up(path, f"{exc}; {attempts} attempts")
                return None
            delay = min(self._first_delay * 2.0 ** (attempts - 1), MAX_DELAY)
            log.warning(
                "notification %s for label %r not delivered (attempt %d of %d): %s; "
                "retrying in %g s",
                path.name,
                label,
                attempts,
                MAX_ATTEMPTS,
                exc,
                delay,
            )
            entry.update(attempts=attempts, due=now + delay)
            atomic_write(path, json.dumps(entry).encode())
            return delay
        path.unlink()
        log.info("notification %s for label %r delivered", path.name, label)
        return None

    def _give_up(self, path: Path, why: str) -> None:
        failed = self.directory / FAILED
        ensure_private_dir(failed)
        os.replace(path, failed / path.name)
        log.error(
            "notification %s given up (%s); kept in the outbox's %s/ directory",
            path.name,
            why,
            FAILED,
        )
