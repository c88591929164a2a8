"""What both ledger backends share: building values from rows, checks, the export copy.

The SQL differs between SQLite and PostgreSQL (placeholders, types, clocks); the meaning of a
row and of an integrity problem does not, so it lives here once (the pending-request queue, its
SQL included, is shared in `queue`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

from cryptography import x509

from python_est.fileio import atomic_write
from python_est.ledger.records import (
    REVOCATION_REASONS,
    IssuedCertificate,
    PendingRequest,
    PendingStatus,
    serial_hex,
)

log = logging.getLogger(__name__)

_Self = TypeVar("_Self", bound="ClosesOnExit")

# Most certificates `current_certificates` returns: a device renews one of them, so a handful
# is plenty, and the bound keeps a subject issued thousands of times from costing a big read.
CURRENT_LIMIT = 16


class ClosesOnExit:
    """`with ledger:` closes it; the backend provides `close()`."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class Row(Protocol):
    """A result row read by column name (`sqlite3.Row`, psycopg's dict rows)."""

    def __getitem__(self, key: str, /) -> Any: ...


def build_certificate(
    row: Row, *, sans: Iterable[str], instant: Callable[[Any], datetime]
) -> IssuedCertificate:
    """The certificate in `row`; `sans` decoded by the backend, `instant` reads a stored time."""
    return IssuedCertificate(
        serial=int(row["serial"], 16),
        subject=row["subject"],
        sans=tuple(sans),
        not_before=instant(row["not_before"]),
        not_after=instant(row["not_after"]),
        issued_at=instant(row["issued_at"]),
        requester=row["requester"],
        auth_method=row["auth_method"],
        label=row["label"],
        operation=row["operation"],
        pem=row["pem"],
        server_generated_key=bool(row["server_generated_key"]),
        revoked_at=_optional(instant, row["revoked_at"]),
        revocation_reason=row["revocation_reason"],
        ca=row["ca"],
    )


def build_pending(row: Row, *, instant: Callable[[Any], datetime]) -> PendingRequest:
    """The pending request in `row`; `instant` reads a stored time."""
    return PendingRequest(
        id=row["id"],
        created_at=instant(row["created_at"]),
        label=row["label"],
        operation=row["operation"],
        requester=row["requester"],
        auth_method=row["auth_method"],
        subject=row["subject"],
        public_key_sha256=row["public_key_sha256"],
        csr_pem=row["csr_pem"],
        status=PendingStatus(row["status"]),
        reason=row["reason"],
        decided_at=_optional(instant, row["decided_at"]),
        serial=None if row["serial"] is None else int(row["serial"], 16),
        claimed_by=row["claimed_by"],
        claimed_at=_optional(instant, row["claimed_at"]),
    )


def _optional(instant: Callable[[Any], datetime], value: Any) -> datetime | None:
    return None if value is None else instant(value)


def revocation_moment(reason: str, when: datetime | None) -> datetime:
    """When a revocation takes effect (`when`, or now).

    Raises:
        ValueError: `reason` is not a name from `REVOCATION_REASONS`.
    """
    if reason not in REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {reason!r}")
    return datetime.now(timezone.utc) if when is None else when


def certificate_problems(rows: Iterable[Row]) -> list[str]:
    """The rows (serial, pem) whose PEM does not parse or carries another serial."""
    problems: list[str] = []
    for row in rows:
        try:
            cert = x509.load_pem_x509_certificate(str(row["pem"]).encode("ascii"))
        except ValueError:
            problems.append(f"certificate {row['serial']}: the PEM does not parse")
            continue
        if cert.serial_number <= 0 or serial_hex(cert.serial_number) != row["serial"]:
            problems.append(f"certificate {row['serial']}: the PEM has another serial")
    return problems


def export(directory: Path, entry: IssuedCertificate) -> None:
    """Write `entry` to `<SERIAL_HEX>.pem` in `directory` (0600); a failure is only logged."""
    # The ledger is the record; the export directory is a convenience copy. The certificate is
    # committed, so failing the request now would only make the client enroll a second time.
    name = f"{serial_hex(entry.serial)}.pem"
    try:
        atomic_write(directory / name, entry.pem.encode("ascii"), 0o600)
    except OSError as exc:
        log.warning("could not export certificate %s: %s", name, exc.strerror)
