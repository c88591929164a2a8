"""Rows of the PostgreSQL ledger: inserting certificates, reading rows back into values."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from psycopg.types.json import Jsonb

from python_est.ledger.records import IssuedCertificate, PendingRequest, serial_hex
from python_est.ledger.rows import Row, build_certificate, build_pending
from python_est.pgsql import Cursor


def insert_certificate(cursor: Cursor, entry: IssuedCertificate) -> bool:
    """Insert `entry` unless its serial is taken; True when inserted."""
    # ON CONFLICT rather than a unique violation: an error would abort the whole transaction,
    # and with it the other certificates of a group commit.
    cursor.execute(
        "INSERT INTO certificates (serial, subject, sans, not_before, not_after, issued_at,"
        " requester, auth_method, label, operation, server_generated_key, pem, revoked_at,"
        " revocation_reason, ca)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (serial) DO NOTHING",
        (
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
        ),
    )
    return cursor.rowcount == 1


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def certificate(row: dict[str, Any]) -> IssuedCertificate:
    return build_certificate(row, sans=row["sans"], instant=_utc)


def pending(row: Row) -> PendingRequest:
    return build_pending(row, instant=_utc)
