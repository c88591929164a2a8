"""The ledger: every issued certificate and every pending (manual-approval) request, in SQLite.

Split by concept: `records` (the values, the errors and the `Ledger` Protocol), `schema` (opening
the file, migrations, rows, mapping storage errors to HTTP errors), `sqlite` (`SqliteLedger`);
what both backends share: `queue` (the pending-request state machine, a mixin over a small SQL
dialect each backend supplies), `rows` (values from rows, the revocation check, the export
copy) and `group` (group commit: concurrent records share one transaction). `postgres`
(`PostgresLedger`, one ledger shared by several instances) with `pgrows` (its rows) needs
psycopg and is imported only when `[ledger] url` names a PostgreSQL database.
"""

from __future__ import annotations

from python_est.ledger.records import (
    REVOCATION_REASONS,
    DuplicateSerial,
    IssuedCertificate,
    Ledger,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    UnknownPendingRequest,
    UnknownSerial,
    general_name_text,
    public_key_sha256,
    serial_hex,
)
from python_est.ledger.schema import (
    BUSY_TIMEOUT_S,
    RETRY_AFTER_S,
    SCHEMA_VERSION,
    translate_sqlite_error,
)
from python_est.ledger.sqlite import SqliteLedger

__all__ = [
    "BUSY_TIMEOUT_S",
    "RETRY_AFTER_S",
    "REVOCATION_REASONS",
    "SCHEMA_VERSION",
    "DuplicateSerial",
    "IssuedCertificate",
    "Ledger",
    "PendingRequest",
    "PendingStateError",
    "PendingStatus",
    "SqliteLedger",
    "UnknownPendingRequest",
    "UnknownSerial",
    "general_name_text",
    "public_key_sha256",
    "serial_hex",
    "translate_sqlite_error",
]
