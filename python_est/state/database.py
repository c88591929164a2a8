"""The PostgreSQL database of `[ledger] url`, opened only at the schema this version needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from python_est.config import Config
from python_est.errors import ConfigError, LedgerError, Unavailable

if TYPE_CHECKING:
    from python_est.pgsql import Database


def open_database(config: Config) -> Database:
    from python_est.pgsql import SCHEMA_VERSION, Database, schema_version

    def error(problem: str) -> ConfigError:
        return ConfigError(config.source, "ledger", "url", problem)

    try:
        database = Database(config.ledger.url, pool_size=config.ledger.pool_size)
    except ValueError as exc:
        raise error(str(exc)) from None
    try:
        version = schema_version(database)
    except (Unavailable, LedgerError):
        raise error(f"cannot reach the database {database.name}") from None
    if version != SCHEMA_VERSION:
        database.close()
        raise error(
            f"the database {database.name} has schema version {version}, this python-est "
            f"needs {SCHEMA_VERSION}: run `python-est db upgrade`"
        )
    return database
