"""Opening the ledger file: permissions, pragmas, schema migrations, rows and error mapping.

Permissions. The database file is created 0600 before SQLite opens it. SQLite creates the -wal
and -shm files with the mode (and, when run as root, the owner) of the database file, so they are
0600 too. An existing file keeps its mode.

Schema. `PRAGMA user_version` is the schema version; `MIGRATIONS[n]` moves version n to n+1.
Migrations run inside one `BEGIN IMMEDIATE` transaction, so concurrent openers migrate once. To
change the schema, append a tuple of statements; never edit a published one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sqlite3
from pathlib import Path

from python_est.errors import LedgerError, Unavailable
from python_est.ledger.records import IssuedCertificate, parse_utc
from python_est.ledger.rows import build_certificate

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 10.0
RETRY_AFTER_S = 30
UNAVAILABLE_DETAIL = "the certificate ledger is unavailable"

# SQLite primary result codes meaning "the disk or the lock, not the data": worth a retry (503).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL = 5, 6, 8, 10, 13
_TRANSIENT_CODES = {_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_FULL}
_TRANSIENT_MESSAGES = ("database or disk is full", "readonly database", "disk i/o error", "locked")
_TRANSIENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT}

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE certificates (
            id INTEGER PRIMARY KEY,
            serial TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            sans TEXT NOT NULL,
            not_before TEXT NOT NULL,
            not_after TEXT NOT NULL,
            issued_at TEXT NOT NULL,
            requester TEXT NOT NULL,
            auth_method TEXT NOT NULL,
            label TEXT NOT NULL,
            operation TEXT NOT NULL,
            server_generated_key INTEGER NOT NULL CHECK (server_generated_key IN (0, 1)),
            pem TEXT NOT NULL,
            revoked_at TEXT,
            revocation_reason TEXT,
            CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
        )""",
        "CREATE INDEX certificates_issued_at ON certificates (issued_at)",
        "CREATE INDEX certificates_label ON certificates (label, issued_at)",
        """CREATE TABLE pending_requests (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            label TEXT NOT NULL,
            operation TEXT NOT NULL,
            requester TEXT NOT NULL,
            auth_method TEXT NOT NULL,
            subject TEXT NOT NULL,
            public_key_sha256 TEXT NOT NULL,
            csr_pem TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'approved', 'rejected', 'issued')),
            reason TEXT,
            decided_at TEXT,
            serial TEXT
        )""",
        "CREATE INDEX pending_match ON pending_requests (label, public_key_sha256, subject)",
        "CREATE INDEX pending_status ON pending_requests (status, created_at)",
    ),
    # 2: small named values: monotonic counters (the CRL number) and the health probe's write.
    ("CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",),
    # 3: the 'issuing' status with its claim (holder, time), so that exactly one process signs
    # an approved request. SQLite cannot alter a CHECK constraint: the table is rebuilt, keeping
    # rowids (find_pending orders by them).
    (
        """CREATE TABLE pending_requests_v3 (
            id TEXT PRIMARY KEY,
            created_at TEXT NOT NULL,
            label TEXT NOT NULL,
            operation TEXT NOT NULL,
            requester TEXT NOT NULL,
            auth_method TEXT NOT NULL,
            subject TEXT NOT NULL,
            public_key_sha256 TEXT NOT NULL,
            csr_pem TEXT NOT NULL,
            status TEXT NOT NULL
                CHECK (status IN ('pending', 'approved', 'rejected', 'issuing', 'issued')),
            reason TEXT,
            decided_at TEXT,
            serial TEXT,
            claimed_by TEXT,
            claimed_at TEXT
        )""",
        "INSERT INTO pending_requests_v3 (rowid, id, created_at, label, operation, requester,"
        " auth_method, subject, public_key_sha256, csr_pem, status, reason, decided_at, serial)"
        " SELECT rowid, id, created_at, label, operation, requester, auth_method, subject,"
        " public_key_sha256, csr_pem, status, reason, decided_at, serial FROM pending_requests",
        "DROP TABLE pending_requests",
        "ALTER TABLE pending_requests_v3 RENAME TO pending_requests",
        "CREATE INDEX pending_match ON pending_requests (label, public_key_sha256, subject)",
        "CREATE INDEX pending_status ON pending_requests (status, created_at)",
    ),
    # 4: the CA that issued each certificate (issue 16: a CA per label). Every row from before
    # was issued by the one CA there was, `[ca]`, named 'default' (statedir.DEFAULT_CA).
    (
        "ALTER TABLE certificates ADD COLUMN ca TEXT NOT NULL DEFAULT 'default'",
        "CREATE INDEX certificates_ca ON certificates (ca, issued_at)",
    ),
    # 5: the poll identifiers of requests a CA handler deferred (issue 18), so that the retry
    # polls them after a restart or on another worker instead of enrolling again.
    (
        """CREATE TABLE backend_polls (
            label TEXT NOT NULL,
            requester TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            poll_id TEXT NOT NULL,
            created_at TEXT NOT NULL,
            PRIMARY KEY (label, requester, fingerprint)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def translate_sqlite_error(exc: sqlite3.Error | OSError) -> LedgerError | Unavailable:
    """Map a storage failure to the error the client sees.

    A full, read-only or failing disk, or a lock held past the busy timeout, is the operator's
    to fix and the client's to retry: `Unavailable` (503 with Retry-After). Anything else (a
    corrupt file, a schema from the future, a bug) is a `LedgerError` (500). Raise the result
    `from exc` so the log keeps the real cause.
    """
    if isinstance(exc, OSError):
        transient = exc.errno in _TRANSIENT_ERRNOS
    else:
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        message = str(exc).lower()
        transient = (code is not None and code & 0xFF in _TRANSIENT_CODES) or any(
            text in message for text in _TRANSIENT_MESSAGES
        )
    if transient:
        return Unavailable(UNAVAILABLE_DETAIL, retry_after=RETRY_AFTER_S)
    return LedgerError(UNAVAILABLE_DETAIL)


def connect(path: Path, read_only: bool) -> sqlite3.Connection:
    """Open (creating 0600 unless `read_only`) and migrate the ledger at `path`."""
    if read_only:
        target, uri = path.resolve().as_uri() + "?mode=ro", True
    else:
        target, uri = str(path), False
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
    # isolation_level=None: we issue BEGIN/COMMIT ourselves. `timeout` is SQLite's
    # busy_timeout: how long to wait for another process's lock before failing.
    conn = sqlite3.connect(
        target,
        timeout=BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
        uri=uri,
    )
    try:
        conn.row_factory = sqlite3.Row
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise LedgerError(UNAVAILABLE_DETAIL)
        # FULL: in WAL mode the default (NORMAL) may lose the last commits on power loss.
        conn.execute("PRAGMA synchronous=FULL")
        _migrate(conn, read_only)
    except Exception:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, read_only: bool) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version > SCHEMA_VERSION or read_only:
        log.error("ledger schema version %s, this software uses %s", version, SCHEMA_VERSION)
        raise LedgerError(UNAVAILABLE_DETAIL)
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Read again under the write lock: another process may have migrated meanwhile.
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for statements in MIGRATIONS[version:]:
            for statement in statements:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise


def bump_counter(conn: sqlite3.Connection, name: str, minimum: int) -> int:
    """Inside a write transaction: store and return max(stored + 1, `minimum`) for `name`."""
    row = conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
    value = max(minimum, 1 if row is None else int(row[0]) + 1)
    conn.execute(
        "INSERT INTO meta (name, value) VALUES (?, ?)"
        " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        (name, value),
    )
    return value


def certificate_from_row(row: sqlite3.Row) -> IssuedCertificate:
    return build_certificate(row, sans=json.loads(row["sans"]), instant=parse_utc)
