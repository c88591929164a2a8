"""`SqliteLedger`: the `Ledger` in one SQLite file (WAL mode), shared by threads and processes.

DESIGN.md decision 8, "nothing issued is lost": `record` commits in WAL mode with
`synchronous=FULL`, so when it returns the certificate is on disk and the caller may send it.
Concurrent `record` calls share one transaction, and so one fsync (`group`).

Concurrency. One `SqliteLedger` holds one connection guarded by a lock. A shared sqlite3
connection has a single transaction state, so every method must own it for its whole transaction;
the lock gives exactly that, and `close()` can close the one connection from any thread (a
connection per thread could only be closed by its own thread, and worker threads come and go).
SQLite admits one writer at a time anyway, and reads are indexed point lookups. Other processes
(the CLI revoking while the server runs) share the file through SQLite's own locks: writes take
`BEGIN IMMEDIATE` (the write lock up front, so two writers never deadlock upgrading a read) and
wait up to `BUSY_TIMEOUT_S` for it. The pending-request queue is `queue.PendingQueue`, over the
SQLite dialect defined here.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from python_est.errors import LedgerError
from python_est.ledger.group import DEFAULT_LIMIT, GroupCommit
from python_est.ledger.queue import Clause, PendingQueue, Statements
from python_est.ledger.records import (
    DuplicateSerial,
    IssuedCertificate,
    PendingRequest,
    UnknownSerial,
    parse_utc,
    serial_hex,
    utc_text,
)
from python_est.ledger.rows import (
    CURRENT_LIMIT,
    ClosesOnExit,
    Row,
    build_pending,
    certificate_problems,
    export,
    revocation_moment,
)
from python_est.ledger.schema import (
    UNAVAILABLE_DETAIL,
    bump_counter,
    certificate_from_row,
    connect,
    translate_sqlite_error,
)

log = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteLedger(PendingQueue, ClosesOnExit):
    """The `Ledger` in one SQLite file; safe to share between threads and processes.

    Args:
        path: the database file; created 0600 (with missing parents 0700) when absent.
        export_dir: also write each recorded certificate to `<SERIAL_HEX>.pem` here (0600), for
            tools that read a directory of certificates (est_proxy's `cert_save_path`).
        read_only: open without write access (for inspection); writes raise `Unavailable`.
        batch_limit: most certificates one transaction carries (1: each its own transaction).

    Raises:
        LedgerError: the file is not a ledger, or is from a newer version of this software.
        Unavailable: the file cannot be created for lack of space or a read-only file system.
    """

    _PLACEHOLDER = "?"
    _TIEBREAK = "rowid"

    def __init__(
        self,
        path: Path,
        *,
        export_dir: Path | None = None,
        read_only: bool = False,
        batch_limit: int = DEFAULT_LIMIT,
    ) -> None:
        self._path = path
        self._export_dir = export_dir
        self._lock = threading.Lock()
        self._group = GroupCommit(self._record_batch, limit=batch_limit)
        try:
            self._conn = connect(path, read_only)
            self._identity = _file_identity(path)
        except (sqlite3.Error, OSError) as exc:
            raise translate_sqlite_error(exc) from exc

    def _check_file(self) -> None:
        # SQLite keeps writing to an open file that was deleted or replaced (the state directory
        # removed under a running server), and everything written there is lost at exit. So
        # every write first checks that the path still names the file we opened.
        try:
            identity = _file_identity(self._path)
        except OSError:
            identity = None
        if identity != self._identity:
            log.error(
                "the ledger %s was deleted or replaced while open; refusing to record "
                "(restore it, or restart the server)",
                self._path,
            )
            raise LedgerError(UNAVAILABLE_DETAIL)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._check_file()
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc) from exc
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except Exception as exc:
                if self._conn.in_transaction:
                    try:
                        self._conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.debug("ledger rollback failed", exc_info=True)
                if isinstance(exc, sqlite3.Error):
                    raise translate_sqlite_error(exc) from exc
                raise

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise translate_sqlite_error(exc) from exc

    def _write(self, work: Callable[[Statements], T]) -> T:
        with self._transaction() as conn:
            return work(conn)

    def _store_time(self, moment: datetime) -> str:
        return utc_text(moment)

    def _pending_from_row(self, row: Row) -> PendingRequest:
        return build_pending(row, instant=parse_utc)

    def _claim_times(self, lease: timedelta) -> tuple[Clause, Clause]:
        # One file on one host: this process's clock is the clock every claimer reads.
        now = datetime.now(timezone.utc)
        return ("?", (utc_text(now),)), ("?", (utc_text(now - lease),))

    def record(self, entry: IssuedCertificate) -> None:
        """Commit `entry` durably; return only once it is on disk.

        Concurrent calls share one transaction (`group.GroupCommit`); each still returns only
        after the commit that carries its entry.

        Raises:
            DuplicateSerial: the serial is already recorded (sign again with a new serial).
            Unavailable: the disk is full or read-only, or the file stayed locked.
            LedgerError: any other storage failure.
        """
        self._group.submit(entry)
        if self._export_dir is not None:
            export(self._export_dir, entry)

    def _record_batch(self, entries: Sequence[IssuedCertificate]) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = []
        with self._transaction() as conn:
            for entry in entries:
                try:
                    conn.execute(_INSERT_CERTIFICATE, _certificate_values(entry))
                except sqlite3.IntegrityError as exc:
                    if "unique" not in str(exc).lower():
                        raise
                    # SQLite undoes only the failed statement: the transaction goes on without
                    # this entry, and the others still commit.
                    duplicate = DuplicateSerial(entry.serial)
                    duplicate.__cause__ = exc
                    outcomes.append(duplicate)
                else:
                    outcomes.append(None)
        return outcomes

    def get(self, serial: int) -> IssuedCertificate | None:
        """The certificate with this serial, or None."""
        if serial <= 0:
            return None
        rows = self._read("SELECT * FROM certificates WHERE serial = ?", (serial_hex(serial),))
        return certificate_from_row(rows[0]) if rows else None

    def get_issued_by(self, ca: str, serial: int) -> IssuedCertificate | None:
        """The certificate the CA `ca` issued with this serial, or None (an OCSP lookup: a
        serial of another CA is unknown to this one)."""
        entry = self.get(serial)
        return entry if entry is not None and entry.ca == ca else None

    def list_certificates(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        label: str | None = None,
        revoked: bool | None = None,
        ca: str | None = None,
    ) -> list[IssuedCertificate]:
        """Certificates newest first.

        Args:
            limit, offset: the page.
            label: only this label.
            revoked: only revoked (True) or only unrevoked (False) certificates.
            ca: only those this CA issued.
        """
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset are non-negative")
        where: list[str] = []
        params: list[object] = []
        if label is not None:
            where.append("label = ?")
            params.append(label)
        if revoked is not None:
            where.append("revoked_at IS NOT NULL" if revoked else "revoked_at IS NULL")
        if ca is not None:
            where.append("ca = ?")
            params.append(ca)
        sql = "SELECT * FROM certificates"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY issued_at DESC, id DESC LIMIT ? OFFSET ?"
        return [certificate_from_row(row) for row in self._read(sql, (*params, limit, offset))]

    def revoke(
        self, serial: int, reason: str, *, when: datetime | None = None, ca: str | None = None
    ) -> IssuedCertificate:
        """Mark a certificate revoked. Revoking it again keeps and returns the first revocation.

        Args:
            serial: the certificate.
            reason: an RFC 5280 CRLReason name from `REVOCATION_REASONS`.
            when: the revocation time; now when omitted.
            ca: only a certificate this CA issued (another CA's serial is left alone).

        Raises:
            ValueError: unknown reason name.
            UnknownSerial: no such certificate (of `ca`, when given).
        """
        when_text = utc_text(revocation_moment(reason, when))
        if serial <= 0:
            raise UnknownSerial(serial)
        with self._transaction() as conn:
            conn.execute(
                "UPDATE certificates SET revoked_at = ?, revocation_reason = ?"
                " WHERE serial = ? AND revoked_at IS NULL AND (? IS NULL OR ca = ?)",
                (when_text, reason, serial_hex(serial), ca, ca),
            )
            row = conn.execute(
                "SELECT * FROM certificates WHERE serial = ? AND (? IS NULL OR ca = ?)",
                (serial_hex(serial), ca, ca),
            ).fetchone()
            if row is None:
                raise UnknownSerial(serial)
        return certificate_from_row(row)

    def is_revoked(self, serial: int) -> bool:
        """True when the ledger has this certificate revoked; False when unrevoked or unknown."""
        if serial <= 0:
            return False
        rows = self._read(
            "SELECT 1 FROM certificates WHERE serial = ? AND revoked_at IS NOT NULL",
            (serial_hex(serial),),
        )
        return bool(rows)

    def current_certificates(
        self, label: str, subject: str, now: datetime
    ) -> list[IssuedCertificate]:
        """Unrevoked certificates issued under `label` for `subject` (RFC 4514 text) and still
        valid at `now`, newest first (RA renewal on behalf of a device)."""
        rows = self._read(
            "SELECT * FROM certificates WHERE label = ? AND subject = ? AND revoked_at IS NULL"
            " AND not_after > ? ORDER BY issued_at DESC, id DESC LIMIT ?",
            (label, subject, utc_text(now), CURRENT_LIMIT),
        )
        return [certificate_from_row(row) for row in rows]

    def count(self) -> int:
        """How many certificates the ledger holds."""
        return int(self._read("SELECT count(*) FROM certificates")[0][0])

    def next_number(self, name: str, *, minimum: int = 1) -> int:
        """Advance the counter `name` and return its new value: max(previous + 1, `minimum`).

        The read and the write are one transaction, so processes sharing the file never get the
        same number (the CRL number must grow with every CRL, RFC 5280 §5.2.3).
        """
        with self._transaction() as conn:
            return bump_counter(conn, name, minimum)

    def probe(self) -> None:
        """Commit one tiny write, proving the ledger can record right now (for health checks).

        Raises:
            Unavailable: the disk is full or read-only, or the file stayed locked.
            LedgerError: any other storage failure, or the ledger is closed.
        """
        self.next_number("health_probe")

    def integrity_check(self) -> list[str]:
        """Problems found in the file and in every certificate row; empty when all is well.

        Runs SQLite's `PRAGMA integrity_check`, then checks that each row's PEM parses and
        carries the row's serial.
        """
        problems = [
            str(row[0]) for row in self._read("PRAGMA integrity_check") if str(row[0]) != "ok"
        ]
        rows = self._read("SELECT serial, pem FROM certificates ORDER BY id")
        return problems + certificate_problems(rows)

    def close(self) -> None:
        """Close the connection; later calls raise `LedgerError`."""
        with self._lock:
            self._conn.close()


_INSERT_CERTIFICATE = (
    "INSERT INTO certificates (serial, subject, sans, not_before, not_after, issued_at,"
    " requester, auth_method, label, operation, server_generated_key, pem, revoked_at,"
    " revocation_reason, ca) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _certificate_values(entry: IssuedCertificate) -> tuple[object, ...]:
    return (
        serial_hex(entry.serial),
        entry.subject,
        json.dumps(list(entry.sans)),
        utc_text(entry.not_before),
        utc_text(entry.not_after),
        utc_text(entry.issued_at),
        entry.requester,
        entry.auth_method,
        entry.label,
        entry.operation,
        int(entry.server_generated_key),
        entry.pem,
        None if entry.revoked_at is None else utc_text(entry.revoked_at),
        entry.revocation_reason,
        entry.ca,
    )


def _file_identity(path: Path) -> tuple[int, int]:
    status = os.stat(path)
    return status.st_dev, status.st_ino
