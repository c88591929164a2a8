"""`UserStore`: the SRP verifier file, shared by TLS-SRP and HTTP Basic."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from python_est.errors import UserStoreError
from python_est.fileio import atomic_write
from python_est.users.accounts import (
    AccountLookups,
    check_collision,
    import_names,
    log_import,
    lookup,
    new_user,
    password_matches,
    with_password,
)
from python_est.users.fileformat import (
    Record,
    Snapshot,
    Stamp,
    decode,
    encode,
    snapshot,
)
from python_est.users.imports import Imported, read_openssl_srpvfile, read_tlslite_verifierdb
from python_est.users.srp import (
    DEFAULT_GROUP_BITS,
    SECRET_BYTES,
    WEAK_GROUP_BITS,
    SrpVerifiers,
    check_allowed_names,
    new_salt,
    normalize_username,
    password_bytes,
)

logger = logging.getLogger(__name__)


class UserStore(AccountLookups):
    """The SRP verifier file, shared by TLS-SRP and HTTP Basic. Thread-safe.

    Readers work on an immutable snapshot that is swapped whole, so they never see half a reload.
    Lookups check the file at most every `reload_interval` seconds and pick up changes made by
    other processes; a broken file is logged once and the previous users stay in force.
    Mutations re-read a changed file first, so an admin command and a running server do not lose
    each other's changes (two admin commands at the same moment are not serialized).

    Args:
        path: the store file; it must exist (see `create`).
        reload_interval: seconds between automatic change checks; None turns them off. The
            default 0 checks (one stat) on every lookup, so a user added by `python-est user
            add` can log in at once.

    Raises:
        UserStoreError: the file is missing, unreadable or malformed.
    """

    def __init__(self, path: Path, *, reload_interval: float | None = 0.0) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._reload_interval = reload_interval
        self._next_check = time.monotonic() + (reload_interval or 0.0)
        self._bad_stamp: Stamp | bool | None = False
        self._snapshot = self._read()
        self._srp = SrpVerifiers(self._current)

    @classmethod
    def create(cls, path: Path, *, reload_interval: float | None = 0.0) -> UserStore:
        """Create an empty store with a fresh server secret at `path`; never overwrites a file."""
        path = Path(path)
        if path.exists():
            raise UserStoreError("the user store already exists")
        _write(path, secrets.token_bytes(SECRET_BYTES), {})
        return cls(path, reload_interval=reload_interval)

    @classmethod
    def create_imported(
        cls, path: Path, found: Imported, *, reload_interval: float | None = 0.0
    ) -> UserStore:
        """Create a store at `path` that holds the users `found` by an import, in one write, so
        that no empty store is ever left beside the users it should hold; never overwrites."""
        path = Path(path)
        import_names(found)  # refuses repeated and look-alike names
        if path.exists():
            raise UserStoreError("the user store already exists")
        _write(path, secrets.token_bytes(SECRET_BYTES), dict(found.users))
        log_import(found, logger)
        return cls(path, reload_interval=reload_interval)

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> bool:
        """Re-read the file unconditionally; on error raise and keep the current users."""
        with self._lock:
            self._snapshot = self._read()
            return True

    def reload(self) -> bool:
        """Re-read the file if its inode, size or mtime changed.

        Returns:
            True when the file was re-read.

        Raises:
            UserStoreError: the changed file is missing or malformed; the current users stay.
        """
        with self._lock:
            return self._reload_locked()

    def add(
        self,
        user: str,
        password: str,
        *,
        group_bits: int = DEFAULT_GROUP_BITS,
        allowed_names: Iterable[str] | None = None,
    ) -> None:
        """Add a user with a fresh salt. Raises UserStoreError if it exists or is invalid."""
        name, record = new_user(user, password, group_bits=group_bits, allowed_names=allowed_names)

        def change(users: dict[str, Record]) -> None:
            if name in users:
                raise UserStoreError(f"user {name!r} already exists")
            check_collision(name, users)
            users[name] = record

        self._mutate(change)

    def passwd(self, user: str, password: str) -> None:
        """Set a new password and salt; a weak imported group is upgraded to the default."""
        name = normalize_username(user)
        secret = password_bytes(password)
        salt = new_salt()

        def change(users: dict[str, Record]) -> None:
            users[name] = with_password(_existing(users, name), name, secret, salt)

        self._mutate(change)

    def remove(self, user: str) -> None:
        """Delete a user. Raises UserStoreError if there is no such user."""
        name = normalize_username(user)

        def change(users: dict[str, Record]) -> None:
            _existing(users, name)
            del users[name]

        self._mutate(change)

    def set_allowed_names(self, user: str, names: Iterable[str] | None) -> None:
        """Set the names `user` may ask for; None restores the default (the user's own name)."""
        name = normalize_username(user)
        allowed = check_allowed_names(names)

        def change(users: dict[str, Record]) -> None:
            users[name] = replace(_existing(users, name), allowed_names=allowed)

        self._mutate(change)

    def list_users(self) -> list[str]:
        """All user names, sorted."""
        return sorted(self._current().users)

    def weak_users(self) -> list[str]:
        """Users whose verifier uses a group below 2048 bits (only imports can add them)."""
        users = self._current().users
        return sorted(name for name, r in users.items() if r.group_bits in WEAK_GROUP_BITS)

    def check_password(self, user: str, password: str) -> bool:
        """Check an HTTP Basic password by recomputing the verifier; compare in constant time.

        An unknown or invalid user name costs the same verifier computation and returns False.
        """
        current = self._current()
        found = lookup(user, current.users.get)
        return password_matches(
            user, password, found, lambda: (current.simulated_bits, current.secret)
        )

    def srp_verifiers(self) -> SrpVerifiers:
        """The `verifierDB` to pass to tlslite's `handshakeServer`; it follows reloads."""
        return self._srp

    def import_openssl_srpvfile(self, path: Path, *, overwrite: bool = False) -> list[str]:
        """Import the users of an `openssl srp -srpvfile` file (libest's format).

        `R` (revoked) lines are skipped and logged. `I` (custom group) lines are accepted only
        when they equal an RFC 5054 group. All or nothing: on any error nothing is imported.
        Existing users are refused unless `overwrite`; their allowed names are kept.

        Returns:
            The imported user names, in file order.
        """
        return self._import(read_openssl_srpvfile(path), overwrite)

    def import_tlslite_verifierdb(self, path: Path, *, overwrite: bool = False) -> list[str]:
        """Import the users of a tlslite `VerifierDB` dbm file; all or nothing, as above.

        Returns:
            The imported user names, sorted.
        """
        return self._import(read_tlslite_verifierdb(path), overwrite)

    def _current(self) -> Snapshot:
        self._maybe_reload()
        return self._snapshot

    def _record(self, name: str) -> Record | None:
        return self._current().users.get(name)

    def _maybe_reload(self) -> None:
        if self._reload_interval is None or time.monotonic() < self._next_check:
            return
        if not self._lock.acquire(blocking=False):
            return  # another thread is reloading; the current snapshot is fine meanwhile
        try:
            self._next_check = time.monotonic() + self._reload_interval
            stamp = _stamp(self._path)
            if stamp == self._snapshot.stamp or stamp == self._bad_stamp:
                return
            try:
                self._snapshot = self._read()
            except UserStoreError as exc:
                self._bad_stamp = stamp
                logger.warning("user store not reloaded, keeping the previous users: %s", exc)
            else:
                logger.info("user store reloaded: %d users", len(self._snapshot.users))
        finally:
            self._lock.release()

    def _reload_locked(self) -> bool:
        if _stamp(self._path) == self._snapshot.stamp:
            return False
        self._snapshot = self._read()
        return True

    def _read(self) -> Snapshot:
        try:
            with open(self._path, "rb") as handle:
                info = os.fstat(handle.fileno())
                raw = handle.read()
        except FileNotFoundError:
            raise UserStoreError("the user store does not exist") from None
        except OSError as exc:
            raise UserStoreError(f"cannot read the user store: {exc.strerror}") from None
        if stat.S_IMODE(info.st_mode) & 0o077:
            logger.warning("user store %s is accessible to others; use mode 0600", self._path)
        return decode(raw, (info.st_ino, info.st_size, info.st_mtime_ns))

    def _mutate(self, change: Callable[[dict[str, Record]], None]) -> None:
        with self._lock:
            self._reload_locked()
            users = dict(self._snapshot.users)
            change(users)
            secret = self._snapshot.secret
            _write(self._path, secret, users)
            self._snapshot = snapshot(secret, users, _stamp(self._path))

    def _import(self, found: Imported, overwrite: bool) -> list[str]:
        names = import_names(found)

        def change(users: dict[str, Record]) -> None:
            clash = sorted(name for name in names if name in users)
            if clash and not overwrite:
                raise UserStoreError(f"users already exist: {', '.join(clash)}")
            for name in names:
                check_collision(name, users)
            for name, record in found.users:
                old = users.get(name)
                keep = old.allowed_names if old is not None else None
                users[name] = replace(record, allowed_names=keep)

        self._mutate(change)
        log_import(found, logger)
        return names


def _existing(users: Mapping[str, Record], name: str) -> Record:
    record = users.get(name)
    if record is None:
        raise UserStoreError(f"no such user {name!r}")
    return record


def _stamp(path: Path) -> Stamp | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


def _write(path: Path, secret: bytes, users: Mapping[str, Record]) -> None:
    try:
        atomic_write(path, encode(secret, users), mode=0o600)
    except OSError as exc:
        raise UserStoreError(f"cannot write the user store: {exc.strerror}") from None
