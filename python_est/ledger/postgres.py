"""`PostgresLedger`: the `Ledger` in PostgreSQL, shared by every instance of a fleet.

The same contract as `SqliteLedger`: `record` returns only once the COMMIT is acknowledged (so
the certificate may be sent), the database enforces serial uniqueness (`UNIQUE`), and each
pending-request transition is a single `UPDATE ... WHERE status = ...`, so of two instances
deciding or claiming the same request at once exactly one succeeds. Connection loss and an
unreachable database are `Unavailable` (503 with Retry-After); see `python_est.pgsql.connection`
for why a certificate is never handed out unrecorded, and how connections heal.

The schema comes from `python-est db upgrade` (`python_est.pgsql.schema`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import psycopg
from cryptography import x509

from python_est.ledger.pgrows import certificate, insert_certificate, pending, pending_row
from python_est.ledger.records import (
    DuplicateSerial,
    IssuedCertificate,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    UnknownPendingRequest,
    UnknownSerial,
    serial_hex,
)
from python_est.ledger.rows import (
    CURRENT_LIMIT,
    ClosesOnExit,
    certificate_problems,
    check_lease,
    export,
    insert_pending_sql,
    new_pending,
    pending_insert_values,
    revocation_moment,
)
from python_est.pgsql import Cursor, Database, scalar

if TYPE_CHECKING:
    from typing_extensions import LiteralString

_ORDER_NEWEST: Final = " ORDER BY issued_at DESC, id DESC LIMIT %s OFFSET %s"
_PENDING: Final = PendingStatus.PENDING.value
_ISSUING: Final = PendingStatus.ISSUING.value


class PostgresLedger(ClosesOnExit):
    """The `Ledger` in a PostgreSQL database; safe to share between threads and instances.

    Args:
        db: the database (schema from `python-est db upgrade`); closed by `close()`.
        export_dir: also write each recorded certificate to `<SERIAL_HEX>.pem` here (0600).
    """

    def __init__(self, db: Database, *, export_dir: Path | None = None) -> None:
        self._db = db
        self._export_dir = export_dir

    @property
    def database(self) -> Database:
        return self._db

    def record(self, entry: IssuedCertificate) -> None:
        """Commit `entry`; return only once PostgreSQL acknowledged the COMMIT.

        Raises:
            DuplicateSerial: another certificate has this serial (sign again with a new one).
            Unavailable: the database cannot be reached, or the COMMIT's outcome is unknown.
            LedgerError: any other database failure.
        """
        try:
            self._db.run(lambda cursor: insert_certificate(cursor, entry))
        except psycopg.errors.UniqueViolation as exc:
            # A retried COMMIT whose first attempt had in fact succeeded finds its own row: the
            # same PEM means this very certificate is recorded.
            existing = self.get(entry.serial)
            if existing is None or existing.pem != entry.pem:
                raise DuplicateSerial(entry.serial) from exc
        if self._export_dir is not None:
            export(self._export_dir, entry)

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

    def list_certificates(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        label: str | None = None,
        revoked: bool | None = None,
    ) -> list[IssuedCertificate]:
        """Certificates newest first; `label` and `revoked` filter as in `SqliteLedger`."""
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset are non-negative")

        def work(cursor: Cursor) -> list[dict[str, Any]]:
            page = (limit, offset)
            if label is None and revoked is None:
                return cursor.execute("SELECT * FROM certificates" + _ORDER_NEWEST, page).fetchall()
            if revoked is None:
                return cursor.execute(
                    "SELECT * FROM certificates WHERE label = %s" + _ORDER_NEWEST, (label, *page)
                ).fetchall()
            # %s IS NULL: one statement serves "any label" and "this label".
            sql: LiteralString
            if revoked:
                sql = "SELECT * FROM certificates WHERE revoked_at IS NOT NULL"
            else:
                sql = "SELECT * FROM certificates WHERE revoked_at IS NULL"
            return cursor.execute(
                sql + " AND (%s::text IS NULL OR label = %s)" + _ORDER_NEWEST,
                (label, label, *page),
            ).fetchall()

        return [certificate(row) for row in self._db.run(work)]

    def revoke(
        self, serial: int, reason: str, *, when: datetime | None = None
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
                " WHERE serial = %s AND revoked_at IS NULL",
                (moment, reason, serial_hex(serial)),
            )
            return cursor.execute(
                "SELECT * FROM certificates WHERE serial = %s", (serial_hex(serial),)
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

    def add_pending(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        label: str,
        operation: str,
        requester: str,
        auth_method: str,
        match: str | None = None,
    ) -> PendingRequest:
        """Hold `csr` for manual approval and return the new request (status pending)."""
        request = new_pending(
            csr,
            label=label,
            operation=operation,
            requester=requester,
            auth_method=auth_method,
            match=match,
        )
        self._db.run(
            lambda cursor: cursor.execute(
                insert_pending_sql("%s"), pending_insert_values(request, moment=lambda t: t)
            )
        )
        return request

    def find_pending(
        self, label: str, public_key_sha256: str, subject: str
    ) -> PendingRequest | None:
        """The newest request, in any status, for this label, key and subject (a retry)."""
        row = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT * FROM pending_requests"
                " WHERE label = %s AND public_key_sha256 = %s AND subject = %s"
                " ORDER BY created_at DESC, seq DESC LIMIT 1",
                (label, public_key_sha256.lower(), subject),
            ).fetchone()
        )
        return None if row is None else pending(row)

    def get_pending(self, request_id: str) -> PendingRequest | None:
        """The request with this id, or None."""
        row = self._db.run(lambda cursor: pending_row(cursor, request_id))
        return None if row is None else pending(row)

    def list_pending(self, status: PendingStatus | None = None) -> list[PendingRequest]:
        """Requests oldest first (the approval queue order), optionally of one status."""
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT * FROM pending_requests WHERE (%s::text IS NULL OR status = %s)"
                " ORDER BY created_at, seq",
                (None if status is None else status.value,) * 2,
            ).fetchall()
        )
        return [pending(row) for row in rows]

    def decide_pending(
        self, request_id: str, approve: bool, reason: str | None = None
    ) -> PendingRequest:
        """Approve or reject a pending request. Of concurrent deciders exactly one succeeds.

        Raises:
            UnknownPendingRequest: no such id.
            PendingStateError: the request was already decided.
        """
        status = PendingStatus.APPROVED if approve else PendingStatus.REJECTED
        changed, request = self._update_pending(
            request_id,
            "UPDATE pending_requests SET status = %s, reason = %s, decided_at = %s"
            " WHERE id = %s AND status = %s",
            (status.value, reason, datetime.now(timezone.utc), request_id, _PENDING),
        )
        if not changed:
            raise PendingStateError(request, PendingStatus.PENDING)
        return request

    def claim_pending(
        self, request_id: str, *, holder: str, lease_seconds: int
    ) -> PendingRequest | None:
        """Claim an approved request for issuing (approved -> issuing); one claimer wins.

        A claim older than `lease_seconds` (its holder died, or is very slow) may be taken over.
        Claim times come from the database clock, so the instances' clocks need not agree.

        Args:
            request_id: the request.
            holder: who claims; unique per attempt (`mark_pending_issued` must name it).
            lease_seconds: how long a claim excludes others.

        Returns:
            The claimed request, or None: not approved, or claimed by another live claim.

        Raises:
            ValueError: `lease_seconds` is less than 1.
            UnknownPendingRequest: no such id.
        """
        check_lease(lease_seconds)
        changed, request = self._update_pending(
            request_id,
            "UPDATE pending_requests SET status = %s, claimed_by = %s, claimed_at = now()"
            " WHERE id = %s AND (status = %s OR (status = %s AND claimed_at < now() - %s))",
            (
                _ISSUING,
                holder,
                request_id,
                PendingStatus.APPROVED.value,
                _ISSUING,
                timedelta(seconds=lease_seconds),
            ),
        )
        return request if changed else None

    def mark_pending_issued(self, request_id: str, serial: int, *, holder: str) -> PendingRequest:
        """Note that certificate `serial` (recorded already) was issued for a claimed request.

        Raises:
            UnknownPendingRequest: no such id.
            UnknownSerial: the certificate is not in the ledger.
            PendingStateError: the request is not issuing under `holder`'s claim (never claimed,
                issued already, or claimed by another holder after this claim's lease ran out).
        """
        if self.get(serial) is None:
            raise UnknownSerial(serial)
        changed, request = self._update_pending(
            request_id,
            "UPDATE pending_requests SET status = %s, serial = %s"
            " WHERE id = %s AND status = %s AND claimed_by = %s",
            (PendingStatus.ISSUED.value, serial_hex(serial), request_id, _ISSUING, holder),
        )
        if not changed:
            raise PendingStateError(request, PendingStatus.ISSUING, holder=holder)
        return request

    def _update_pending(
        self, request_id: str, update: LiteralString, params: tuple[object, ...]
    ) -> tuple[bool, PendingRequest]:
        # The status test sits in the UPDATE itself, so the check and the change are one atomic
        # step between instances: a second decider or claimer matches no row.
        def work(cursor: Cursor) -> tuple[int, dict[str, Any] | None]:
            cursor.execute(update, params)
            return cursor.rowcount, pending_row(cursor, request_id)

        changed, row = self._db.run(work)
        if row is None:
            raise UnknownPendingRequest(request_id)
        return changed == 1, pending(row)

    def close(self) -> None:
        """Close the idle database connections (a later call connects again)."""
        self._db.close()
