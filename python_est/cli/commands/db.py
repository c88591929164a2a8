"""`python-est db upgrade|status` and `python-est user import file`: the storage schema and moves.

`db upgrade` creates or migrates the schema of the configured storage: the PostgreSQL database
of `[ledger] url` (numbered migrations recorded in its `schema_version` table, safe to run from
several hosts at once), or the SQLite ledger file (which also migrates itself when opened).
Servers on PostgreSQL refuse to start until it has run. `db status` prints the version and exits
1 when an upgrade is due.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from python_est.config import Config
from python_est.errors import ConfigError, EstError, UserStoreError
from python_est.ledger import SCHEMA_VERSION as SQLITE_SCHEMA_VERSION
from python_est.ledger import SqliteLedger
from python_est.state import open_state
from python_est.state.guards import init_command

if TYPE_CHECKING:
    from python_est.pgsql import Database


def add_command(sub: Any) -> None:
    """Register `db upgrade` and `db status` on the top-level subparsers `sub`."""
    db = sub.add_parser("db", help="create or migrate the ledger/user database schema")
    actions = db.add_subparsers(title="db commands", metavar="ACTION", required=True)
    upgrade = actions.add_parser("upgrade", help="create or migrate the schema (idempotent)")
    upgrade.set_defaults(func=_upgrade)
    status = actions.add_parser("status", help="schema version; exit 1 when an upgrade is due")
    status.set_defaults(func=_status)


def import_user_file(args: argparse.Namespace, config: Config) -> int:
    """`user import file PATH`: copy the users of a verifier file into the database."""
    if not config.ledger.url:
        raise UserStoreError(
            "`user import file` moves users into PostgreSQL: set [ledger] url first"
        )
    from python_est.users.database import DatabaseUserStore

    store = open_state(config, create=False).users
    if not isinstance(store, DatabaseUserStore):
        raise UserStoreError("the user store is disabled ([srp] enabled = no)")
    names = store.import_user_file(Path(args.path), overwrite=args.overwrite)
    print(f"python-est: imported {len(names)} user(s) into the database: {', '.join(names)}")
    return 0


def _upgrade(args: argparse.Namespace, config: Config) -> int:
    if not config.ledger.url:
        path = config.ledger.path
        if not path.exists():
            # Upgrading creates nothing: a missing ledger is a wrong -c or a state not made yet.
            print(
                f"python-est: no ledger at {path}; check -c, or create the state with "
                f"`{init_command(config)}`",
                file=sys.stderr,
            )
            return 1
        try:
            SqliteLedger(path).close()
        except EstError as exc:
            print(f"python-est: cannot open the ledger {path}: {exc.detail}", file=sys.stderr)
            return 1
        print(f"python-est: ledger {path} is at schema version {SQLITE_SCHEMA_VERSION}")
        return 0
    from python_est.pgsql import SchemaTooNew, upgrade

    db = _database(config)
    try:
        before, after = upgrade(db)
    except SchemaTooNew as exc:
        print(f"python-est: {db.name}: {exc}", file=sys.stderr)
        return 1
    except EstError as exc:
        print(f"python-est: cannot upgrade {db.name}: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if before == after:
        print(f"python-est: database {db.name} is at schema version {after}; nothing to do")
    else:
        print(f"python-est: database {db.name} upgraded from schema version {before} to {after}")
    return 0


def _status(args: argparse.Namespace, config: Config) -> int:
    if not config.ledger.url:
        print(f"python-est: SQLite ledger {config.ledger.path} (migrates itself when opened)")
        return 0
    from python_est.pgsql import SCHEMA_VERSION, schema_version

    db = _database(config)
    try:
        version = schema_version(db)
    except EstError as exc:
        print(f"python-est: cannot reach {db.name}: {exc.detail}", file=sys.stderr)
        return 1
    finally:
        db.close()
    if version == SCHEMA_VERSION:
        print(f"python-est: database {db.name} is at schema version {version} (current)")
        return 0
    print(
        f"python-est: database {db.name} is at schema version {version}; this python-est uses "
        f"{SCHEMA_VERSION}: run `python-est db upgrade`"
    )
    return 1


def _database(config: Config) -> Database:
    from python_est.pgsql import Database

    try:
        return Database(config.ledger.url, pool_size=1)
    except ValueError as exc:
        raise ConfigError(config.source, "ledger", "url", str(exc)) from None
