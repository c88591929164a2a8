"""The pending-request queue of `SqliteLedger` (manual approval, RFC 7030 §4.2.3).

A mixin so that `sqlite` keeps the connection and the certificates, and this module the queue:
held requests, decisions, and the claim that lets exactly one process sign an approved request.
Every transition is one `UPDATE ... WHERE status ...` inside a `BEGIN IMMEDIATE` transaction, so
the check and the change are atomic between threads and processes.
"""

from __future__ import annotations

import abc
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta, timezone

from cryptography import x509

from python_est.ledger.records import (
    IssuedCertificate,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    UnknownPendingRequest,
    UnknownSerial,
    serial_hex,
    utc_text,
)
from python_est.ledger.rows import (
    check_lease,
    insert_pending_sql,
    new_pending,
    pending_insert_values,
)
from python_est.ledger.schema import pending_from_row


class SqlitePendingQueue(abc.ABC):
    """The pending-request methods of the `Ledger`, on the connection of a `SqliteLedger`."""

    @abc.abstractmethod
    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]: ...

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[object] = ()) -> list[sqlite3.Row]: ...

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
        """Hold `csr` for manual approval and return the new request (status pending)."""
        request = new_pending(
            csr,
            label=label,
            operation=operation,
            requester=requester,
            auth_method=auth_method,
            match=match,
        )
        with self._transaction() as conn:
            conn.execute(insert_pending_sql("?"), pending_insert_values(request, moment=utc_text))
        return request

    def find_pending(
        self, label: str, public_key_sha256: str, subject: str
    ) -> PendingRequest | None:
        """The newest request, in any status, for this label, key and subject (a retry)."""
        rows = self._query(
            "SELECT * FROM pending_requests"
            " WHERE label = ? AND public_key_sha256 = ? AND subject = ?"
            " ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (label, public_key_sha256.lower(), subject),
        )
        return pending_from_row(rows[0]) if rows else None

    def get_pending(self, request_id: str) -> PendingRequest | None:
        """The request with this id, or None."""
        rows = self._query("SELECT * FROM pending_requests WHERE id = ?", (request_id,))
        return pending_from_row(rows[0]) if rows else None

    def list_pending(self, status: PendingStatus | None = None) -> list[PendingRequest]:
        """Requests oldest first (the approval queue order), optionally of one status."""
        if status is None:
            rows = self._query("SELECT * FROM pending_requests ORDER BY created_at, rowid")
        else:
            rows = self._query(
                "SELECT * FROM pending_requests WHERE status = ? ORDER BY created_at, rowid",
                (status.value,),
            )
        return [pending_from_row(row) for row in rows]

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
            "status = ?, reason = ?, decided_at = ?",
            (status.value, reason, utc_text(datetime.now(timezone.utc))),
            "status = ?",
            (PendingStatus.PENDING.value,),
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
        check_lease(lease_seconds)
        now = datetime.now(timezone.utc)
        changed, request = self._update_pending(
            request_id,
            "status = ?, claimed_by = ?, claimed_at = ?",
            (PendingStatus.ISSUING.value, holder, utc_text(now)),
            "status = ? OR (status = ? AND claimed_at < ?)",
            (
                PendingStatus.APPROVED.value,
                PendingStatus.ISSUING.value,
                utc_text(now - timedelta(seconds=lease_seconds)),
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
            "status = ?, serial = ?",
            (PendingStatus.ISSUED.value, serial_hex(serial)),
            "status = ? AND claimed_by = ?",
            (PendingStatus.ISSUING.value, holder),
        )
        if not changed:
            raise PendingStateError(request, PendingStatus.ISSUING, holder=holder)
        return request

    def _update_pending(
        self,
        request_id: str,
        assignments: str,
        params: tuple[object, ...],
        condition: str,
        condition_params: tuple[object, ...],
    ) -> tuple[bool, PendingRequest]:
        # The status test sits in the UPDATE itself, so the check and the change are one atomic
        # step even between processes: a second decider or claimer matches no row.
        with self._transaction() as conn:
            changed = conn.execute(
                f"UPDATE pending_requests SET {assignments} WHERE id = ? AND ({condition})",
                (*params, request_id, *condition_params),
            ).rowcount
            row = conn.execute(
                "SELECT * FROM pending_requests WHERE id = ?", (request_id,)
            ).fetchone()
        if row is None:
            raise UnknownPendingRequest(request_id)
        return changed == 1, pending_from_row(row)
