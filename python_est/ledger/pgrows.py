"""Rows of the PostgreSQL ledger: inserting certificates, reading rows back into values."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from psycopg.types.json import Jsonb

from python_est.fileio import atomic_write
from python_est.ledger.records import (
    IssuedCertificate,
    PendingRequest,
    PendingStatus,
    serial_hex,
)
from python_est.pgsql import Cursor

log = logging.getLogger(__name__)


def export(directory: Path, entry: IssuedCertificate) -> None:
    # As SqliteLedger: the export is a convenience copy of a committed record; failing the
    # request now would only make the client enroll a second time.
    name = f"{serial_hex(entry.serial)}.pem"
    try:
        atomic_write(directory / name, entry.pem.encode("ascii"), 0o600)
    except OSError as exc:
        log.warning("could not export certificate %s: %s", name, exc.strerror)


def insert_certificate(cursor: Cursor, entry: IssuedCertificate) -> None:
    cursor.execute(
        "INSERT INTO certificates (serial, subject, sans, not_before, not_after, issued_at,"
        " requester, auth_method, label, operation, server_generated_key, pem, revoked_at,"
        " revocation_reason) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
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
        ),
    )


def pending_row(cursor: Cursor, request_id: str) -> dict[str, Any] | None:
    return cursor.execute("SELECT * FROM pending_requests WHERE id = %s", (request_id,)).fetchone()


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _optional_utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else _utc(moment)


def certificate(row: dict[str, Any]) -> IssuedCertificate:
    return IssuedCertificate(
        serial=int(row["serial"], 16),
        subject=row["subject"],
        sans=tuple(row["sans"]),
        not_before=_utc(row["not_before"]),
        not_after=_utc(row["not_after"]),
        issued_at=_utc(row["issued_at"]),
        requester=row["requester"],
        auth_method=row["auth_method"],
        label=row["label"],
        operation=row["operation"],
        pem=row["pem"],
        server_generated_key=bool(row["server_generated_key"]),
        revoked_at=_optional_utc(row["revoked_at"]),
        revocation_reason=row["revocation_reason"],
    )


def pending(row: dict[str, Any]) -> PendingRequest:
    return PendingRequest(
        id=row["id"],
        created_at=_utc(row["created_at"]),
        label=row["label"],
        operation=row["operation"],
        requester=row["requester"],
        auth_method=row["auth_method"],
        subject=row["subject"],
        public_key_sha256=row["public_key_sha256"],
        csr_pem=row["csr_pem"],
        status=PendingStatus(row["status"]),
        reason=row["reason"],
        decided_at=_optional_utc(row["decided_at"]),
        serial=None if row["serial"] is None else int(row["serial"], 16),
        claimed_by=row["claimed_by"],
        claimed_at=_optional_utc(row["claimed_at"]),
    )
