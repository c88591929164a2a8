"""`DatabaseUserStore`: the SRP verifiers and allowed names in PostgreSQL, for a fleet.

The same users, rules and maths as the verifier file (`UserStore`), in the `users` table, so a
user added through one instance logs in through every other at once: each lookup reads the table.
The secret that derives simulated verifiers for unknown users (RFC 5054 §2.5.1.3) is a `meta`
row shared by every instance, so an unknown name gets the same fake salt wherever it is probed.

Lookups that serve a login raise `Unavailable` (503) when the database cannot be reached.
Administrative changes raise `UserStoreError` instead, which the CLI prints as one line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

from python_est.errors import EstError, UserStoreError
from python_est.pgsql import Cursor, Database, scalar, shared_secret
from python_est.users.accounts import (
    AccountLookups,
    check_collision,
    import_names,
    log_import,
    new_user,
    password_matches,
    with_password,
)
from python_est.users.dbrows import insert_user, json_names, read_record
from python_est.users.fileformat import Record, decode
from python_est.users.imports import Imported, read_openssl_srpvfile, read_tlslite_verifierdb
from python_est.users.srp import (
    DEFAULT_GROUP_BITS,
    GROUPS,
    SECRET_BYTES,
    WEAK_GROUP_BITS,
    SrpEntry,
    check_allowed_names,
    int_bytes,
    new_salt,
    normalize_username,
    password_bytes,
    simulated_entry,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
SECRET_NAME = "users.simulated_verifier_secret"
_SIMULATED_BITS_TTL_S = 60.0
# Advisory lock held while a name is checked for collisions and inserted, so two instances
# cannot add look-alike names at the same moment ("est" "users" in ASCII).
_NAMES_LOCK = 0x6573_7475_7365


class DatabaseUserStore(AccountLookups):
    """Password users in the `users` table; a `UserDirectory`. Thread-safe.

    Args:
        db: the shared database (schema from `python-est db upgrade`).
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._lock = threading.Lock()
        self._secret: bytes | None = None
        self._bits: tuple[float, int] | None = None  # (expiry, group of simulated entries)
        self._srp = DatabaseVerifiers(self)

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

        def work(cursor: Cursor) -> str | None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_NAMES_LOCK,))
            if (problem := _collision(cursor, [name])) is not None:
                return problem
            if not insert_user(cursor, name, record, overwrite=False):
                return f"user {name!r} already exists"
            return None

        problem = self._admin(work)
        if problem is not None:
            raise UserStoreError(problem)

    def passwd(self, user: str, password: str) -> None:
        """Set a new password and salt; a weak imported group is upgraded to the default."""
        name = normalize_username(user)
        secret = password_bytes(password)
        salt = new_salt()
        old = self._record(name)
        if old is None:
            raise UserStoreError(f"no such user {name!r}")
        new = with_password(old, name, secret, salt)
        verifier = int_bytes(new.verifier, GROUPS[new.group_bits][0])
        changed = self._admin(
            lambda cursor: (
                cursor.execute(
                    "UPDATE users SET group_bits = %s, salt = %s, verifier = %s WHERE name = %s",
                    (new.group_bits, salt, verifier, name),
                ).rowcount
            )
        )
        if not changed:
            raise UserStoreError(f"no such user {name!r}")

    def remove(self, user: str) -> None:
        """Delete a user. Raises UserStoreError if there is no such user."""
        name = normalize_username(user)
        removed = self._admin(
            lambda cursor: cursor.execute("DELETE FROM users WHERE name = %s", (name,)).rowcount
        )
        if not removed:
            raise UserStoreError(f"no such user {name!r}")

    def set_allowed_names(self, user: str, names: Iterable[str] | None) -> None:
        """Set the names `user` may ask for; None restores the default (the user's own name)."""
        name = normalize_username(user)
        allowed = check_allowed_names(names)
        changed = self._admin(
            lambda cursor: (
                cursor.execute(
                    "UPDATE users SET allowed_names = %s WHERE name = %s",
                    (json_names(allowed), name),
                ).rowcount
            )
        )
        if not changed:
            raise UserStoreError(f"no such user {name!r}")

    def reload(self) -> bool:
        """Nothing to re-read (every lookup reads the table): check the database answers.

        Returns:
            False.

        Raises:
            UserStoreError: the database cannot be reached.
        """
        self._admin(lambda cursor: scalar(cursor, "SELECT count(*) FROM users"))
        return False

    def list_users(self) -> list[str]:
        """All user names, sorted."""
        rows = self._db.run(lambda cursor: cursor.execute("SELECT name FROM users").fetchall())
        return sorted(str(row["name"]) for row in rows)

    def weak_users(self) -> list[str]:
        """Users whose verifier uses a group below 2048 bits (only imports can add them)."""
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT name FROM users WHERE group_bits = ANY(%s)", (sorted(WEAK_GROUP_BITS),)
            ).fetchall()
        )
        return sorted(str(row["name"]) for row in rows)

    def check_password(self, user: str, password: str) -> bool:
        """Check an HTTP Basic password by recomputing the verifier; compare in constant time.

        An unknown or invalid user name costs the same verifier computation and returns False.

        Raises:
            Unavailable: the database cannot be reached.
        """
        found = self._lookup(user)
        return password_matches(
            user, password, found, lambda: (self.simulated_bits(), self.secret())
        )

    def srp_verifiers(self) -> DatabaseVerifiers:
        """The `verifierDB` to pass to tlslite's `handshakeServer`; every lookup reads the table."""
        return self._srp

    def import_openssl_srpvfile(self, path: Path, *, overwrite: bool = False) -> list[str]:
        """Import an `openssl srp -srpvfile` file; all or nothing, as `UserStore` does.

        Returns:
            The imported user names, in file order.
        """
        return self._import(read_openssl_srpvfile(path), overwrite, keep_allowed=True)

    def import_tlslite_verifierdb(self, path: Path, *, overwrite: bool = False) -> list[str]:
        """Import a tlslite `VerifierDB` dbm file; all or nothing.

        Returns:
            The imported user names, sorted.
        """
        return self._import(read_tlslite_verifierdb(path), overwrite, keep_allowed=True)

    def import_user_file(self, path: Path, *, overwrite: bool = False) -> list[str]:
        """Move the users of a python-est verifier file (`[srp] user_db`) into the database.

        Salts, verifiers, groups, allowed names and creation times are copied as they are, so
        every password keeps working. All or nothing. The file is left untouched.

        Returns:
            The imported user names, sorted.
        """
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise UserStoreError(f"cannot read the user store file: {exc.strerror}") from None
        snapshot = decode(raw, None)
        users = [(name, snapshot.users[name]) for name in sorted(snapshot.users)]
        return self._import(Imported(users, []), overwrite, keep_allowed=False)

    def secret(self) -> bytes:
        """The shared secret behind simulated verifiers (created by the first instance)."""
        if self._secret is None:
            self._secret = shared_secret(self._db, SECRET_NAME, SECRET_BYTES)
        return self._secret

    def simulated_bits(self) -> int:
        """The group most real users have: unknown users get it, so it does not give them away."""
        cached = self._bits
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        bits = self._db.run(
            lambda cursor: scalar(
                cursor,
                "SELECT group_bits FROM users GROUP BY group_bits"
                " ORDER BY count(*) DESC, group_bits DESC LIMIT 1",
            )
        )
        value = DEFAULT_GROUP_BITS if bits is None else int(bits)
        self._bits = (time.monotonic() + _SIMULATED_BITS_TTL_S, value)
        return value

    def entry(self, raw_user: bytes) -> SrpEntry:
        """tlslite's (N, g, salt, verifier) for a user name as sent; simulated when unknown."""
        try:
            name = raw_user.decode("utf-8")
        except UnicodeDecodeError:
            name = ""
        record = self._record(name) if name else None
        if record is None:
            return simulated_entry(self.secret(), raw_user, self.simulated_bits())
        n, g = GROUPS[record.group_bits]
        return n, g, record.salt, record.verifier

    def _record(self, name: str) -> Record | None:
        row = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT name, group_bits, salt, verifier, allowed_names, created"
                " FROM users WHERE name = %s",
                (name,),
            ).fetchone()
        )
        return None if row is None else read_record(row)

    def _admin(self, work: Callable[[Cursor], T]) -> T:
        try:
            return self._db.run(work)
        except EstError as exc:
            raise UserStoreError(f"the user database failed: {exc.detail}") from None

    def _import(self, found: Imported, overwrite: bool, *, keep_allowed: bool) -> list[str]:
        names = import_names(found)

        def work(cursor: Cursor) -> str | None:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_NAMES_LOCK,))
            rows = cursor.execute(
                "SELECT name, group_bits, salt, verifier, allowed_names, created"
                " FROM users WHERE name = ANY(%s) FOR UPDATE",
                (names,),
            ).fetchall()
            existing = {str(row["name"]): read_record(row) for row in rows}
            if existing and not overwrite:
                return f"users already exist: {', '.join(sorted(existing))}"
            if (problem := _collision(cursor, names)) is not None:
                return problem
            for name, record in found.users:
                old = existing.get(name)
                if keep_allowed:
                    record = replace(record, allowed_names=old.allowed_names if old else None)
                insert_user(cursor, name, record, overwrite=True)
            return None

        problem = self._admin(work)
        if problem is not None:
            raise UserStoreError(problem)
        log_import(found, log)
        return names


def _collision(cursor: Cursor, names: Iterable[str]) -> str | None:
    """Why the first of `names` that collides with a stored name is refused; None if none does."""
    stored = [str(row["name"]) for row in cursor.execute("SELECT name FROM users").fetchall()]
    for name in names:
        try:
            check_collision(name, stored)
        except UserStoreError as exc:
            return str(exc)
    return None


class DatabaseVerifiers(Mapping[bytes, SrpEntry]):
    """The database as tlslite's `verifierDB`, with the file store's semantics.

    An unknown name gets a deterministic simulated entry instead of KeyError; `in`, `len()` and
    iteration cover the real users only; the mapping is always true (tlslite offers SRP suites
    only when `verifierDB` is truthy).
    """

    def __init__(self, store: DatabaseUserStore) -> None:
        self._store = store

    def __getitem__(self, key: bytes) -> SrpEntry:
        return self._store.entry(bytes(key))

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes | bytearray):
            return False
        try:
            return self._store.exists(bytes(key).decode("utf-8"))
        except UnicodeDecodeError:
            return False

    def __iter__(self) -> Iterator[bytes]:
        return (name.encode("utf-8") for name in self._store.list_users())

    def __len__(self) -> int:
        return len(self._store.list_users())

    def __bool__(self) -> bool:
        return True
