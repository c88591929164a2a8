"""Rows of the PostgreSQL ledger: inserting certificates, reading rows back into values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from psycopg.types.json import Jsonb

from python_est.ledger.records import IssuedCertificate, PendingRequest, serial_hex
from python_est.ledger.rows import Row, build_certificate, build_pending
from python_est.pgsql import Cursor

_COLUMNS = (
    "serial, subject, sans, not_before, not_after, issued_at, requester, auth_method, label,"
    " operation, server_generated_key, pem, revoked_at, revocation_reason, ca"
)
_ROW = "(" + ", ".join(["%s"] * 15) + ")"


def insert_certificates(cursor: Cursor, entries: Sequence[IssuedCertificate]) -> set[str]:
    """Insert `entries` in one statement, skipping serials that are taken; the serials (hex)
    inserted."""
    # One statement, so one round trip for a whole group commit: the next group waits for this
    # one's transaction, and a round trip per row would stretch that wait (issue 20).
    # ON CONFLICT rather than a unique violation: an error would abort the whole transaction,
    # and with it the other certificates of the group.
    params: list[Any] = []
    for entry in entries:
        params += (
            serial_hex(entry.serial),
            entry.subject,
            Jsonb(list(entry.sans)),
            entry.not_before,
            entry.not_after,
            entry.issued_at,
            entry.requester,
            entry.auth_method,
            entry.label,
            entry.operation,
            entry.server_generated_key,
            entry.pem,
            entry.revoked_at,
            entry.revocation_reason,
            entry.ca,
        )
    rows = cursor.execute(
        f"INSERT INTO certificates ({_COLUMNS}) VALUES {', '.join([_ROW] * len(entries))}"
        " ON CONFLICT (serial) DO NOTHING RETURNING serial",
        params,
    ).fetchall()
    return {row["serial"] for row in rows}


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def certificate(row: dict[str, Any]) -> IssuedCertificate:
    return build_certificate(row, sans=row["sans"], instant=_utc)


def pending(row: Row) -> PendingRequest:
    return build_pending(row, instant=_utc)
