"""PostgreSQL storage for several python-est instances sharing one database (psycopg 3).

Split by concept: `connection` (`Database`: the pool, retries and error mapping), `schema`
(migrations and the `schema_version` table) and `meta` (shared server secrets). The stores
built on it live with their SQLite, file and memory twins: `python_est.ledger.postgres`,
`python_est.users.database`, `python_est.ratelimit.database` and
`python_est.ticketkeys.database`.

psycopg is an optional dependency (`pip install python-est[postgres]`): import this package only
when a database URL is configured.
"""

from __future__ import annotations

from python_est.pgsql.connection import (
    RETRY_AFTER_S,
    Cursor,
    Database,
    describe_url,
    is_database_url,
    scalar,
)
from python_est.pgsql.meta import shared_secret
from python_est.pgsql.schema import SCHEMA_VERSION, SchemaTooNew, schema_version, upgrade

__all__ = [
    "RETRY_AFTER_S",
    "SCHEMA_VERSION",
    "Cursor",
    "Database",
    "SchemaTooNew",
    "describe_url",
    "is_database_url",
    "scalar",
    "schema_version",
    "shared_secret",
    "upgrade",
]
