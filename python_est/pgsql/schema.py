"""The PostgreSQL schema: numbered migrations and the `schema_version` table.

`python-est db upgrade` runs `upgrade()`; servers only check `schema_version()` and refuse to
start on a schema they do not know, so a rolling upgrade is: upgrade the schema, then restart the
instances one by one. Migrations run in one transaction under an advisory lock, so concurrent
upgrades are safe and a failed one leaves the previous version intact (PostgreSQL DDL is
transactional). To change the schema, append a tuple of statements; never edit a published one.

Tables: `certificates` and `pending_requests` (the ledger, the same columns as the SQLite
ledger, with native time stamps), `users` (SRP verifiers and allowed names), `meta` (named
server secrets, such as the key that derives simulated verifiers for unknown users), `counters`
(numbers that only grow, such as the CRL number),
`auth_failures` and `auth_lockouts` (the rate-limit counters), `tls_ticket_keys` (session-ticket
keys shared by every instance), `backend_polls` (the poll identifiers of requests a CA handler
deferred).
"""

from __future__ import annotations

from python_est.pgsql.connection import Cursor, Database, scalar

# pg_advisory_xact_lock key: "est" "db" in ASCII, any constant unlikely to clash.
_MIGRATION_LOCK = 0x6573_7464_6200

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE certificates (
            id BIGSERIAL PRIMARY KEY,
            serial TEXT NOT NULL UNIQUE,
            subject TEXT NOT NULL,
            sans JSONB NOT NULL,
            not_before TIMESTAMPTZ NOT NULL,
            not_after TIMESTAMPTZ NOT NULL,
            issued_at TIMESTAMPTZ NOT NULL,
            requester TEXT NOT NULL,
            auth_method TEXT NOT NULL,
            label TEXT NOT NULL,
            operation TEXT NOT NULL,
            server_generated_key BOOLEAN NOT NULL,
            pem TEXT NOT NULL,
            revoked_at TIMESTAMPTZ,
            revocation_reason TEXT,
            CHECK ((revoked_at IS NULL) = (revocation_reason IS NULL))
        )""",
        "CREATE INDEX certificates_issued_at ON certificates (issued_at)",
        "CREATE INDEX certificates_label ON certificates (label, issued_at)",
        """CREATE TABLE pending_requests (
            seq BIGSERIAL UNIQUE,
            id TEXT PRIMARY KEY,
            created_at TIMESTAMPTZ NOT NULL,
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
            decided_at TIMESTAMPTZ,
            serial TEXT REFERENCES certificates (serial)
        )""",
        "CREATE INDEX pending_match ON pending_requests (label, public_key_sha256, subject)",
        "CREATE INDEX pending_status ON pending_requests (status, created_at)",
        """CREATE TABLE users (
            name TEXT PRIMARY KEY,
            group_bits INTEGER NOT NULL,
            salt BYTEA NOT NULL,
            verifier BYTEA NOT NULL,
            allowed_names JSONB,
            created TEXT NOT NULL
        )""",
        """CREATE TABLE meta (
            name TEXT PRIMARY KEY,
            value BYTEA NOT NULL,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE counters (
            name TEXT PRIMARY KEY,
            value BIGINT NOT NULL
        )""",
        """CREATE TABLE auth_failures (
            key TEXT NOT NULL,
            at TIMESTAMPTZ NOT NULL
        )""",
        "CREATE INDEX auth_failures_key ON auth_failures (key, at)",
        """CREATE TABLE auth_lockouts (
            key TEXT PRIMARY KEY,
            locked_until TIMESTAMPTZ NOT NULL
        )""",
        """CREATE TABLE tls_ticket_keys (
            id BIGSERIAL PRIMARY KEY,
            key BYTEA NOT NULL,
            created_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )""",
    ),
    # 2: the 'issuing' status with its claim (holder, time), so that exactly one instance signs
    # an approved request (PostgresLedger.claim_pending).
    (
        "ALTER TABLE pending_requests DROP CONSTRAINT pending_requests_status_check",
        """ALTER TABLE pending_requests ADD CONSTRAINT pending_requests_status_check
            CHECK (status IN ('pending', 'approved', 'rejected', 'issuing', 'issued'))""",
        "ALTER TABLE pending_requests ADD COLUMN claimed_by TEXT",
        "ALTER TABLE pending_requests ADD COLUMN claimed_at TIMESTAMPTZ",
    ),
    # 3: the CA that issued each certificate (issue 16); earlier rows are the `[ca]` CA's.
    (
        "ALTER TABLE certificates ADD COLUMN ca TEXT NOT NULL DEFAULT 'default'",
        "CREATE INDEX certificates_ca ON certificates (ca, issued_at)",
    ),
    # 4: a CA handler's poll identifiers (issue 18), shared by every instance.
    (
        """CREATE TABLE backend_polls (
            label TEXT NOT NULL,
            requester TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            poll_id TEXT NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (label, requester, fingerprint)
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: Database) -> int:
    """The schema version of the database: 0 when `python-est db upgrade` never ran.

    Raises:
        Unavailable: the database cannot be reached.
    """
    return db.run(_version)


def upgrade(db: Database) -> tuple[int, int]:
    """Create or migrate the schema to `SCHEMA_VERSION`.

    Returns:
        (version before, version after); equal when there was nothing to do.

    Raises:
        Unavailable: the database cannot be reached.
        LedgerError: the schema is newer than this software, or a migration failed.
    """

    def work(cursor: Cursor) -> tuple[int, int]:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        before = _version(cursor)
        if before > SCHEMA_VERSION:
            raise SchemaTooNew(before)
        for number in range(before + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[number - 1]:
                cursor.execute(statement.encode("utf-8"))
            cursor.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))
        return before, SCHEMA_VERSION

    return db.run(work)


class SchemaTooNew(Exception):
    """The database was migrated by a newer python-est; this one must not touch it."""

    def __init__(self, version: int) -> None:
        super().__init__(
            f"the database schema is version {version}; this python-est knows {SCHEMA_VERSION}"
        )
        self.version = version


def _version(cursor: Cursor) -> int:
    if scalar(cursor, "SELECT to_regclass('schema_version') IS NOT NULL") is not True:
        return 0
    return int(scalar(cursor, "SELECT coalesce(max(version), 0) FROM schema_version"))
