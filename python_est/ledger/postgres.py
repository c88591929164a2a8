"""`PostgresLedger`: the `Ledger` in PostgreSQL, shared by every instance of a fleet.

The same contract as `SqliteLedger`: `record` returns only once the COMMIT is acknowledged (so
the certificate may be sent), the database enforces serial uniqueness (`UNIQUE`), and the
pending-request queue is the same `queue.PendingQueue` (each transition a single
`UPDATE ... WHERE status = ...`, so of two instances deciding or claiming the same request at
once exactly one succeeds), over the PostgreSQL dialect defined here. Connection loss and an
unreachable database are `Unavailable` (503 with Retry-After); see `python_est.pgsql.connection`
for why a certificate is never handed out unrecorded, and how connections heal.

The schema comes from `python-est db upgrade` (`python_est.pgsql.schema`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from python_est.ledger.group import DEFAULT_LIMIT, GroupCommit
from python_est.ledger.pgrows import certificate, insert_certificates, pending
from python_est.ledger.queue import Clause, PendingQueue, Statements
from python_est.ledger.records import (
    DuplicateSerial,
    IssuedCertificate,
    PendingRequest,
    UnknownSerial,
    serial_hex,
)
from python_est.ledger.rows import (
    CURRENT_LIMIT,
    ClosesOnExit,
    Row,
    certificate_problems,
    export,
    revocation_moment,
)
from python_est.pgsql import Cursor, Database, scalar

T = TypeVar("T")

_ORDER_NEWEST: Final = " ORDER BY issued_at DESC, id DESC LIMIT %s OFFSET %s"


class PostgresLedger(PendingQueue, ClosesOnExit):
    """The `Ledger` in a PostgreSQL database; safe to share between threads and instances.

    Args:
        db: the database (schema from `python-est db upgrade`); closed by `close()`.
        export_dir: also write each recorded certificate to `<SERIAL_HEX>.pem` here (0600).
        batch_limit: most certificates one transaction carries (1: each its own transaction).
        in_flight: most of those transactions committing at once (ledger.group): two, so that
            one group's rows travel while the server flushes the other's WAL.
    """

    _PLACEHOLDER = "%s"
    _TIEBREAK = "seq"

    def __init__(
        self,
        db: Database,
        *,
        export_dir: Path | None = None,
        batch_limit: int = DEFAULT_LIMIT,
        in_flight: int = 2,
    ) -> None:
        self._db = db
        self._export_dir = export_dir
        self._group = GroupCommit(self._record_batch, limit=batch_limit, in_flight=in_flight)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return self._db.run(lambda cursor: cursor.execute(sql, params).fetchall())

    def _write(self, work: Callable[[Statements], T]) -> T:
        return self._db.run(work)

    def _store_time(self, moment: datetime) -> datetime:
        return moment

    def _pending_from_row(self, row: Row) -> PendingRequest:
        return pending(row)

    def _claim_times(self, lease: timedelta) -> tuple[Clause, Clause]:
        # The database's clock, so the instances' clocks need not agree on who holds a claim.
        return ("now()", ()), ("now() - ?", (lease,))

    @property
    def database(self) -> Database:
        return self._db

    def record(self, entry: IssuedCertificate) -> None:
        """Commit `entry`; return only once PostgreSQL acknowledged the COMMIT.

        Concurrent calls share one transaction (`group.GroupCommit`); each still returns only
        after the commit that carries its entry.

        Raises:
            DuplicateSerial: another certificate has this serial (sign again with a new one).
            Unavailable: the database cannot be reached, or the COMMIT's outcome is unknown.
            LedgerError: any other database failure.
        """
        self._group.submit(entry)
        if self._export_dir is not None:
            export(self._export_dir, entry)

    def _record_batch(self, entries: Sequence[IssuedCertificate]) -> list[BaseException | None]:
        def work(cursor: Cursor) -> list[BaseException | None]:
            inserted = insert_certificates(cursor, entries)
            outcomes: list[BaseException | None] = []
            for entry in entries:
                if serial_hex(entry.serial) in inserted:
                    # Once: the same serial again in this batch finds this row below.
                    inserted.discard(serial_hex(entry.serial))
                    outcomes.append(None)
                    continue
                # The serial is taken. A retried transaction whose first attempt had in fact
                # committed finds its own row: the same PEM means this very certificate.
                existing = scalar(
                    cursor,
                    "SELECT pem FROM certificates WHERE serial = %s",
                    (serial_hex(entry.serial),),
                )
                outcomes.append(None if existing == entry.pem else DuplicateSerial(entry.serial))
            return outcomes

        return self._db.run(work)

    def get(self, serial: int) -> IssuedCertificate | None:
        """The certificate with this serial, or None."""
        if serial <= 0:
            return None
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT * FROM certificates WHERE serial = %s", (serial_hex(serial),)
            ).fetchall()
        )
        return certificate(rows[0]) if rows else None

    def get_issued_by(self, ca: str, serial: int) -> IssuedCertificate | None:
        """As `SqliteLedger.get_issued_by`."""
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
        """Certificates newest first; `label`, `revoked` and `ca` filter as in `SqliteLedger`."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset are non-negative")
        state = None if revoked is None else ("revoked" if revoked else "valid")

        def work(cursor: Cursor) -> list[dict[str, Any]]:
            # `%s IS NULL OR ...`: one statement serves every combination of filters.
            return cursor.execute(
                "SELECT * FROM certificates WHERE (%s::text IS NULL OR label = %s)"
                " AND (%s::text IS NULL OR (revoked_at IS NOT NULL) = (%s::text = 'revoked'))"
                " AND (%s::text IS NULL OR ca = %s)" + _ORDER_NEWEST,
                (label, label, state, state, ca, ca, limit, offset),
            ).fetchall()

        return [certificate(row) for row in self._db.run(work)]

    def revoke(
        self, serial: int, reason: str, *, when: datetime | None = None, ca: str | None = None
    ) -> IssuedCertificate:
        """Mark a certificate revoked; revoking it again keeps and returns the first revocation.

        Raises:
            ValueError: unknown reason name.
            UnknownSerial: no such certificate.
        """
        moment = revocation_moment(reason, when)
        if serial <= 0:
            raise UnknownSerial(serial)

        def work(cursor: Cursor) -> dict[str, Any] | None:
            cursor.execute(
                "UPDATE certificates SET revoked_at = %s, revocation_reason = %s"
                " WHERE serial = %s AND revoked_at IS NULL AND (%s::text IS NULL OR ca = %s)",
                (moment, reason, serial_hex(serial), ca, ca),
            )
            return cursor.execute(
                "SELECT * FROM certificates WHERE serial = %s AND (%s::text IS NULL OR ca = %s)",
                (serial_hex(serial), ca, ca),
            ).fetchone()

        row = self._db.run(work)
        if row is None:
            raise UnknownSerial(serial)
        return certificate(row)

    def is_revoked(self, serial: int) -> bool:
        """True when the ledger has this certificate revoked; False when unrevoked or unknown."""
        if serial <= 0:
            return False
        found = self._db.run(
            lambda cursor: scalar(
                cursor,
                "SELECT 1 FROM certificates WHERE serial = %s AND revoked_at IS NOT NULL",
                (serial_hex(serial),),
            )
        )
        return found is not None

    def current_certificates(
        self, label: str, subject: str, now: datetime
    ) -> list[IssuedCertificate]:
        """As `SqliteLedger.current_certificates`."""
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT * FROM certificates WHERE label = %s AND subject = %s"
                " AND revoked_at IS NULL AND not_after > %s"
                " ORDER BY issued_at DESC, id DESC LIMIT %s",
                (label, subject, now, CURRENT_LIMIT),
            ).fetchall()
        )
        return [certificate(row) for row in rows]

    def count(self) -> int:
        """How many certificates the ledger holds."""
        return int(self._db.run(lambda cursor: scalar(cursor, "SELECT count(*) FROM certificates")))

    def next_number(self, name: str, *, minimum: int = 1) -> int:
        """Advance the counter `name` and return its new value: max(previous + 1, `minimum`).

        One statement, so instances never get the same number (the CRL number must grow with
        every CRL, RFC 5280 §5.2.3).
        """
        value = self._db.run(
            lambda cursor: scalar(
                cursor,
                "INSERT INTO counters (name, value) VALUES (%s, %s) ON CONFLICT (name)"
                " DO UPDATE SET value = greatest(counters.value + 1, EXCLUDED.value)"
                " RETURNING value",
                (name, max(1, minimum)),
            )
        )
        return int(value)

    def probe(self) -> None:
        """Commit one tiny write, proving the ledger can record right now (for health checks).

        Raises:
            Unavailable: the database cannot be reached.
            LedgerError: any other database failure.
        """
        self.next_number("health_probe")

    def integrity_check(self) -> list[str]:
        """Rows whose PEM does not parse or carries another serial; empty when all is well."""
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT serial, pem FROM certificates ORDER BY id"
            ).fetchall()
        )
        return certificate_problems(rows)

    def close(self) -> None:
        """Close the idle database connections (a later call connects again)."""
        self._db.close()
