"""The pending-request queue (manual approval, RFC 7030 §4.2.3), written once for both backends.

The state machine: pending -> approved | rejected (`decide_pending`); approved -> issuing
(`claim_pending`, which also takes over an issuing claim older than its lease); issuing ->
issued (`mark_pending_issued`, only under the same claim); issuing -> approved
(`release_pending`, only under the same claim, when the claimer issued nothing). Each
transition is one `UPDATE ... WHERE id = ? AND (<the states it may leave>)` and a read of the
row, in one write
transaction: the status test sits in the UPDATE itself, so the check and the change are one
atomic step between threads, processes and instances, and of two deciders or claimers exactly
one matches the row.

`PendingQueue` is a mixin: the ledger class supplies the dialect, the little that differs
between SQLite and PostgreSQL. That is the parameter placeholder and the column that orders rows
created in the same microsecond (`_PLACEHOLDER`, `_TIEBREAK`); a read and a write transaction
(`_read`, `_write`: SQLite's lock and `BEGIN IMMEDIATE`, PostgreSQL's pooled retrying
transaction); how a time is stored and a row read back (`_store_time`, `_pending_from_row`);
and whose clock times a claim (`_claim_times`).

The mixin also keeps the poll identifiers of requests a CA handler deferred (`keep_poll`,
`poll_id`, `forget_poll`): requests pending at the CA rather than here, in the same store so a
retry after a restart, on another worker or on another instance polls instead of enrolling again.
"""

from __future__ import annotations

import abc
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar, Protocol, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from python_est.ledger.records import (
    IssuedCertificate,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    UnknownPendingRequest,
    UnknownSerial,
    public_key_sha256,
    serial_hex,
)
from python_est.ledger.rows import Row

T = TypeVar("T")

# A piece of SQL and its parameters.
Clause = tuple[str, tuple[Any, ...]]

# Columns of a new pending request, in the order of `PendingQueue._insert_values`.
_INSERT_COLUMNS = (
    "id",
    "created_at",
    "label",
    "operation",
    "requester",
    "auth_method",
    "subject",
    "public_key_sha256",
    "csr_pem",
    "status",
)
_INSERT = (
    f"INSERT INTO pending_requests ({', '.join(_INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' for _ in _INSERT_COLUMNS)})"
)
_BY_ID = "SELECT * FROM pending_requests WHERE id = ?"

# A CA handler's poll identifiers (`python_est.backends.handler`), one per deferred request.
_POLL_KEY = "label = ? AND requester = ? AND fingerprint = ?"
_POLL_BY_KEY = f"SELECT poll_id FROM backend_polls WHERE {_POLL_KEY}"
_FORGET_POLL = f"DELETE FROM backend_polls WHERE {_POLL_KEY}"
# The same statement in SQLite (3.24 and later) and PostgreSQL.
_KEEP_POLL = (
    "INSERT INTO backend_polls (label, requester, fingerprint, poll_id, created_at)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (label, requester, fingerprint)"
    " DO UPDATE SET poll_id = excluded.poll_id, created_at = excluded.created_at"
)


class Result(Protocol):
    """What a statement returns (`sqlite3.Cursor`, a psycopg cursor)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...


class Statements(Protocol):
    """Runs statements inside a write transaction (`sqlite3.Connection`, a psycopg cursor)."""

    def execute(self, sql: str, params: tuple[Any, ...], /) -> Result: ...


class PendingQueue(abc.ABC):
    """The pending-request methods of the `Ledger`, over the dialect its backend supplies."""

    # The parameter placeholder of the driver: the SQL here is written with "?".
    _PLACEHOLDER: ClassVar[str]
    # The column that keeps insertion order among requests created in the same microsecond.
    _TIEBREAK: ClassVar[str]

    @abc.abstractmethod
    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> Sequence[Row]:
        """The rows of one query, outside any write transaction."""

    @abc.abstractmethod
    def _write(self, work: Callable[[Statements], T]) -> T:
        """`work` in one write transaction, committed when it returns (it may run twice)."""

    @abc.abstractmethod
    def _store_time(self, moment: datetime) -> object:
        """`moment` as a statement parameter."""

    @abc.abstractmethod
    def _pending_from_row(self, row: Row) -> PendingRequest: ...

    @abc.abstractmethod
    def _claim_times(self, lease: timedelta) -> tuple[Clause, Clause]:
        """SQL for the claim time, and for the time before which a claim has expired."""

    @abc.abstractmethod
    def get(self, serial: int) -> IssuedCertificate | None: ...

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
        """Hold `csr` for manual approval and return the new request (status pending).

        `match` replaces the CSR key's hash as what `find_pending` recognises retries by.
        """
        request = PendingRequest(
            id=secrets.token_hex(16),
            created_at=datetime.now(timezone.utc),
            label=label,
            operation=operation,
            requester=requester,
            auth_method=auth_method,
            subject=csr.subject.rfc4514_string(),
            public_key_sha256=match or public_key_sha256(csr.public_key()),
            csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        )
        values = self._insert_values(request)
        self._write(lambda statements: statements.execute(self._sql(_INSERT), values))
        return request

    def find_pending(
        self, label: str, public_key_sha256: str, subject: str
    ) -> PendingRequest | None:
        """The newest request, in any status, for this label, key and subject (a retry)."""
        rows = self._read(
            self._sql(
                "SELECT * FROM pending_requests"
                " WHERE label = ? AND public_key_sha256 = ? AND subject = ?"
                f" ORDER BY created_at DESC, {self._TIEBREAK} DESC LIMIT 1"
            ),
            (label, public_key_sha256.lower(), subject),
        )
        return self._pending_from_row(rows[0]) if rows else None

    def get_pending(self, request_id: str) -> PendingRequest | None:
        """The request with this id, or None."""
        rows = self._read(self._sql(_BY_ID), (request_id,))
        return self._pending_from_row(rows[0]) if rows else None

    def list_pending(self, status: PendingStatus | None = None) -> list[PendingRequest]:
        """Requests oldest first (the approval queue order), optionally of one status."""
        order = f" ORDER BY created_at, {self._TIEBREAK}"
        if status is None:
            rows = self._read("SELECT * FROM pending_requests" + order)
        else:
            rows = self._read(
                self._sql("SELECT * FROM pending_requests WHERE status = ?" + order),
                (status.value,),
            )
        return [self._pending_from_row(row) for row in rows]

    def decide_pending(
        self, request_id: str, approve: bool, reason: str | None = None
    ) -> PendingRequest:
        """Approve or reject a pending request. Of concurrent deciders exactly one succeeds.

        Raises:
            UnknownPendingRequest: no such id.
            PendingStateError: the request was already decided.
        """
        status = PendingStatus.APPROVED if approve else PendingStatus.REJECTED
        changed, request = self._transition(
            request_id,
            (
                "status = ?, reason = ?, decided_at = ?",
                (status.value, reason, self._store_time(datetime.now(timezone.utc))),
            ),
            ("status = ?", (PendingStatus.PENDING.value,)),
        )
        if not changed:
            raise PendingStateError(request, PendingStatus.PENDING)
        return request

    def claim_pending(
        self, request_id: str, *, holder: str, lease_seconds: int
    ) -> PendingRequest | None:
        """Claim an approved request for issuing (approved -> issuing); one claimer wins.

        A claim older than `lease_seconds` (its holder died, or is very slow) may be taken over.

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
        if lease_seconds < 1:
            raise ValueError("lease_seconds must be at least one second")
        (now, now_params), (expired, expired_params) = self._claim_times(
            timedelta(seconds=lease_seconds)
        )
        changed, request = self._transition(
            request_id,
            (
                f"status = ?, claimed_by = ?, claimed_at = {now}",
                (PendingStatus.ISSUING.value, holder, *now_params),
            ),
            (
                f"status = ? OR (status = ? AND claimed_at < {expired})",
                (PendingStatus.APPROVED.value, PendingStatus.ISSUING.value, *expired_params),
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
        changed, request = self._transition(
            request_id,
            ("status = ?, serial = ?", (PendingStatus.ISSUED.value, serial_hex(serial))),
            ("status = ? AND claimed_by = ?", (PendingStatus.ISSUING.value, holder)),
        )
        if not changed:
            raise PendingStateError(request, PendingStatus.ISSUING, holder=holder)
        return request

    def release_pending(self, request_id: str, *, holder: str) -> bool:
        """Give back `holder`'s claim (issuing -> approved) when it issued nothing: the backend
        deferred (an upstream's or a CA handler's 202) or failed. The next retry claims the
        request at once instead of waiting for the lease to run out.

        Returns:
            False when the request is not issuing under this claim (its lease ran out and
            another holder claimed it, or it was issued): nothing changed.

        Raises:
            UnknownPendingRequest: no such id.
        """
        changed, _ = self._transition(
            request_id,
            ("status = ?, claimed_by = NULL, claimed_at = NULL", (PendingStatus.APPROVED.value,)),
            ("status = ? AND claimed_by = ?", (PendingStatus.ISSUING.value, holder)),
        )
        return changed

    def poll_id(self, label: str, requester: str, fingerprint: str) -> str | None:
        """The poll identifier a CA handler gave for this deferred request, or None."""
        rows = self._read(self._sql(_POLL_BY_KEY), (label, requester, fingerprint))
        return str(rows[0]["poll_id"]) if rows else None

    def keep_poll(self, label: str, requester: str, fingerprint: str, poll_id: str) -> None:
        """Remember `poll_id` for the retry of this deferred request (replacing an older one)."""
        values = (
            label,
            requester,
            fingerprint,
            poll_id,
            self._store_time(datetime.now(timezone.utc)),
        )
        self._write(lambda statements: statements.execute(self._sql(_KEEP_POLL), values))

    def forget_poll(self, label: str, requester: str, fingerprint: str) -> None:
        """Drop the poll identifier of a request that was issued, rejected or failed."""
        values = (label, requester, fingerprint)
        self._write(lambda statements: statements.execute(self._sql(_FORGET_POLL), values))

    def _transition(
        self, request_id: str, assignments: Clause, condition: Clause
    ) -> tuple[bool, PendingRequest]:
        # The condition names the states the request may leave: a request in any other state
        # (decided, claimed, issued meanwhile) matches no row and is returned unchanged.
        (sets, set_params), (where, where_params) = assignments, condition
        update = self._sql(f"UPDATE pending_requests SET {sets} WHERE id = ? AND ({where})")
        params = (*set_params, request_id, *where_params)
        select = self._sql(_BY_ID)

        def work(statements: Statements) -> tuple[int, Any]:
            changed = statements.execute(update, params).rowcount
            return changed, statements.execute(select, (request_id,)).fetchone()

        changed, row = self._write(work)
        if row is None:
            raise UnknownPendingRequest(request_id)
        return changed == 1, self._pending_from_row(row)

    def _insert_values(self, request: PendingRequest) -> tuple[Any, ...]:
        return (
            request.id,
            self._store_time(request.created_at),
            request.label,
            request.operation,
            request.requester,
            request.auth_method,
            request.subject,
            request.public_key_sha256,
            request.csr_pem,
            request.status.value,
        )

    def _sql(self, text: str) -> str:
        # The statements here hold no "?" or "%" other than their parameters.
        return text if self._PLACEHOLDER == "?" else text.replace("?", self._PLACEHOLDER)
