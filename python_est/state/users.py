"""The user store in the state directory, and the older python-est's VerifierDB it may import."""

from __future__ import annotations

from pathlib import Path

from python_est.config import Config
from python_est.errors import ConfigError, UserStoreError
from python_est.statedir import StateDir
from python_est.users import UserStore
from python_est.users.imports import Imported, read_tlslite_verifierdb, verifierdb_format


def user_store_path(config: Config) -> Path:
    """The user store file: `[srp] user_db`, except where the older python-est's `[SRP] userdb`
    names a tlslite VerifierDB: its users then live in the state directory's store, imported on
    the first start (`open_state`) or by `python-est user import tlslite PATH`."""
    if config.srp.legacy_user_db and verifierdb_format(config.srp.user_db) is not None:
        return StateDir(config.server.state_dir).users
    return config.srp.user_db


def import_command(config: Config, path: Path) -> str:
    """The command that imports the tlslite VerifierDB at `path` into the user store."""
    return f"python-est -c {config.source} user import tlslite {path}"


def legacy_users(config: Config) -> Imported | None:
    """The users of the older python-est's VerifierDB, when the first start is to import them."""
    path = user_store_path(config)
    if not config.srp.enabled or config.ledger.url or path == config.srp.user_db or path.exists():
        return None
    try:
        return read_tlslite_verifierdb(config.srp.user_db)
    except UserStoreError as exc:
        raise ConfigError(config.source, "SRP", "userdb", f"{exc}; then start again") from None


def open_users(
    config: Config, create: bool, created: list[str], legacy: Imported | None
) -> UserStore:
    path = user_store_path(config)
    try:
        if path != config.srp.user_db and not path.exists():
            if legacy is None:
                raise ConfigError(
                    config.source,
                    "SRP",
                    "userdb",
                    f"{config.srp.user_db} is a tlslite VerifierDB not imported into {path} "
                    f"yet: run `{import_command(config, config.srp.user_db)}`",
                )
            store = UserStore.create_imported(path, legacy)
            created.append(
                f"user store {path} with {len(legacy.users)} user(s) imported from the tlslite "
                f"VerifierDB {config.srp.user_db} (left unchanged)"
            )
            return store
        if verifierdb_format(path) is not None:
            # Only the legacy key names an import source; the new key names our own file.
            raise ConfigError(
                config.source,
                "srp",
                "user_db",
                f"{path} is a tlslite VerifierDB, not a python-est user store: point user_db at "
                f"a new file, then run `{import_command(config, path)}`",
            )
        if not path.exists():
            if not create:
                raise ConfigError(
                    config.source,
                    "srp",
                    "user_db",
                    f"{path} does not exist (`python-est init` creates an empty one)",
                )
            created.append(f"user store {path}")
            return UserStore.create(path)
        store = UserStore(path)
        store.load()
        return store
    except UserStoreError as exc:
        raise ConfigError(config.source, "srp", "user_db", str(exc)) from None
