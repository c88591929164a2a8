"""What both user stores share: new records, password changes and checks, lookups, imports.

`UserStore` keeps its users in a file and `DatabaseUserStore` in PostgreSQL; the rules and the
maths they apply are the same, so they live here once.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace

from python_est.errors import UserStoreError
from python_est.usernames import fold_username
from python_est.users.fileformat import Record, UserInfo, now
from python_est.users.imports import Imported
from python_est.users.srp import (
    ADD_GROUP_BITS,
    DEFAULT_GROUP_BITS,
    GROUPS,
    MAX_NAME_BYTES,
    WEAK_GROUP_BITS,
    check_allowed_names,
    compute_verifier,
    int_bytes,
    new_salt,
    normalize_username,
    password_bytes,
    simulated_salt,
)

#: A stored user: its normalized name and its record.
Found = tuple[str, Record]


def new_user(
    user: str, password: str, *, group_bits: int, allowed_names: Iterable[str] | None
) -> Found:
    """The normalized name and a fresh record (new salt) for a user being added.

    Raises:
        UserStoreError: the name, password, group or allowed names are invalid.
    """
    name = normalize_username(user)
    secret = password_bytes(password)
    if group_bits not in ADD_GROUP_BITS:
        choices = ", ".join(str(b) for b in sorted(ADD_GROUP_BITS))
        raise UserStoreError(f"the SRP group must be one of {choices} bits")
    allowed = check_allowed_names(allowed_names)
    salt = new_salt()
    verifier = compute_verifier(group_bits, salt, name.encode("utf-8"), secret)
    return name, Record(group_bits, salt, verifier, allowed, now())


def with_password(old: Record, name: str, secret: bytes, salt: bytes) -> Record:
    """`old` with a new password and salt; a weak imported group is upgraded to the default."""
    group = old.group_bits if old.group_bits in ADD_GROUP_BITS else DEFAULT_GROUP_BITS
    verifier = compute_verifier(group, salt, name.encode("utf-8"), secret)
    return replace(old, group_bits=group, salt=salt, verifier=verifier)


def lookup(user: str, record_of: Callable[[str], Record | None]) -> Found | None:
    """The stored user for `user` in any Unicode normal form; None if unknown or invalid."""
    try:
        name = normalize_username(user)
    except UserStoreError:
        return None
    record = record_of(name)
    return None if record is None else (name, record)


class AccountLookups:
    """The read-only queries both stores answer the same way from their stored records.

    A store provides `_record(name)` for an already normalized name.
    """

    def _record(self, name: str) -> Record | None:
        raise NotImplementedError

    def _lookup(self, user: str) -> Found | None:
        return lookup(user, self._record)

    def exists(self, user: str) -> bool:
        """Whether `user` (in any Unicode normal form) is in the store."""
        return self._lookup(user) is not None

    def allowed_names(self, user: str) -> tuple[str, ...]:
        """The names `user` may ask for: `(user,)` unless set; `()` for an unknown user."""
        found = self._lookup(user)
        if found is None:
            return ()
        name, record = found
        return record.allowed_names or (name,)

    def describe(self, user: str) -> UserInfo | None:
        """Group, allowed names and creation time of `user`, or None if unknown."""
        found = self._lookup(user)
        if found is None:
            return None
        name, record = found
        return UserInfo(name, record.group_bits, record.allowed_names or (name,), record.created)


def password_matches(
    user: str, password: str, found: Found | None, unknown: Callable[[], tuple[int, bytes]]
) -> bool:
    """Check a password by recomputing the verifier; compare in constant time.

    An unknown user costs the same computation against a simulated salt (RFC 5054 §2.5.1.3)
    and returns False.

    Args:
        user, password: as the client sent them.
        found: the stored user, or None.
        unknown: (group bits, secret) of simulated entries; called only for an unknown user.
    """
    if found is None:
        group, secret = unknown()
        raw_user = user.encode("utf-8", "surrogatepass")[:MAX_NAME_BYTES]
        salt, expected = simulated_salt(secret, raw_user), 0
    else:
        name, record = found
        group, salt, expected = record.group_bits, record.salt, record.verifier
        raw_user = name.encode("utf-8")
    raw_password = password.encode("utf-8", "surrogatepass")
    modulus = GROUPS[group][0]
    candidate = compute_verifier(group, salt, raw_user, raw_password)
    same = hmac.compare_digest(int_bytes(candidate, modulus), int_bytes(expected, modulus))
    return same and found is not None and bool(raw_password)


def import_names(found: Imported) -> list[str]:
    """The names an import brings, in its order.

    Raises:
        UserStoreError: a name is listed twice, or two names are the same account.
    """
    names = [name for name, _ in found.users]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UserStoreError(f"users listed twice: {', '.join(repeated)}")
    for index, name in enumerate(names):
        check_collision(name, names[:index])
    return names


def check_collision(name: str, existing: Iterable[str]) -> None:
    """Refuse `name` if it is a different spelling of one of the `existing` names.

    Two names collide when they are equal under `fold_username` (NFKC and case folding) but not
    identical, such as "Kiosk" with U+212A KELVIN SIGN and "kiosk": look-alike accounts would
    let one device pass for another in logs, listings and allowed names.

    Raises:
        UserStoreError: naming both users.
    """
    folded = fold_username(name)
    for other in existing:
        if other != name and fold_username(other) == folded:
            raise UserStoreError(
                f"user {name!r} collides with the existing user {other!r}"
                " (names equal under Unicode NFKC and case folding are one account)"
            )


def log_import(found: Imported, log: logging.Logger) -> None:
    """Warn about the revoked users an import skipped and the weak groups it brought."""
    if found.revoked:
        log.warning("skipped revoked SRP users: %s", ", ".join(found.revoked))
    for name, record in found.users:
        if record.group_bits in WEAK_GROUP_BITS:
            log.warning(
                "user %r has a weak %d-bit SRP group; `python-est user passwd %s` moves it to "
                "2048 bits",
                name,
                record.group_bits,
                name,
            )
