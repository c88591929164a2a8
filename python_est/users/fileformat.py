"""The user store's JSON file: records, snapshots, encoding and strict decoding."""

from __future__ import annotations

import base64
import binascii
import collections
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

from python_est.errors import UserStoreError
from python_est.users.srp import (
    BITS_BY_GROUP,
    DEFAULT_GROUP_BITS,
    GROUPS,
    WEAK_GROUP_BITS,
    check_allowed_names,
    int_bytes,
    normalize_username,
)

FORMAT = "python-est-users"
VERSION = 1
_MIN_SECRET_BYTES = 16

#: (inode, size, mtime in ns) of the file a snapshot was read from.
Stamp = tuple[int, int, int]


@dataclass(frozen=True)
class UserInfo:
    """What the store tells about a user, without salt or verifier."""

    name: str
    group_bits: int
    allowed_names: tuple[str, ...]
    created: str

    @property
    def weak(self) -> bool:
        return self.group_bits in WEAK_GROUP_BITS


@dataclass(frozen=True)
class Record:
    """One user's verifier entry; `allowed_names` None means the user's own name."""

    group_bits: int
    salt: bytes
    verifier: int
    allowed_names: tuple[str, ...] | None
    created: str

    def __repr__(self) -> str:
        # Keep verifiers out of tracebacks and debug logs.
        return f"Record(group_bits={self.group_bits}, created={self.created!r})"


@dataclass(frozen=True)
class Snapshot:
    """The whole store as read at one moment; replaced whole, never changed."""

    secret: bytes
    users: Mapping[str, Record]
    stamp: Stamp | None

    def __repr__(self) -> str:
        return f"Snapshot(users={len(self.users)}, stamp={self.stamp})"

    @functools.cached_property
    def simulated_bits(self) -> int:
        # Unknown users get the group most real users have, so the group does not give them away.
        counts = collections.Counter(r.group_bits for r in self.users.values())
        return counts.most_common(1)[0][0] if counts else DEFAULT_GROUP_BITS


def now() -> str:
    """The current UTC time in ISO 8601, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def snapshot(secret: bytes, users: dict[str, Record], stamp: Stamp | None) -> Snapshot:
    """Freeze `users` (the caller hands the dict over) into a snapshot."""
    return Snapshot(secret, MappingProxyType(users), stamp)


def encode(secret: bytes, users: Mapping[str, Record]) -> bytes:
    """The file bytes for `users`, sorted by name."""
    entries: dict[str, dict[str, Any]] = {}
    for name in sorted(users):
        record = users[name]
        entry: dict[str, Any] = {
            "group": record.group_bits,
            "salt": _b64(record.salt),
            "verifier": _b64(int_bytes(record.verifier, GROUPS[record.group_bits][0])),
            "created": record.created,
        }
        if record.allowed_names is not None:
            entry["allowed_names"] = list(record.allowed_names)
        entries[name] = entry
    document = {"format": FORMAT, "version": VERSION, "secret": _b64(secret), "users": entries}
    return json.dumps(document, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


def decode(raw: bytes, stamp: Stamp | None) -> Snapshot:
    """Parse and validate file bytes. Raises UserStoreError naming what is wrong."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserStoreError("the user store is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserStoreError("the file is not a python-est user store")
    if document.get("version") != VERSION:
        raise UserStoreError(f"unsupported user store version {document.get('version')!r}")
    users = document.get("users")
    if not isinstance(users, dict):
        raise UserStoreError("the user store has no 'users' table")
    secret = _unb64(document.get("secret"), "the user store secret")
    if len(secret) < _MIN_SECRET_BYTES:
        raise UserStoreError("the user store secret is too short")
    return snapshot(secret, {name: _decode_user(name, e) for name, e in users.items()}, stamp)


def check_entry(name: str, group: tuple[int, int] | int, salt: bytes, verifier: int) -> int:
    """Check a salt and verifier against a group given as bits or (N, g); return the bits."""
    bits = group if isinstance(group, int) else BITS_BY_GROUP.get(group, 0)
    if bits not in GROUPS:
        raise UserStoreError(f"user {name!r}: SRP group is not one of the RFC 5054 groups")
    if not 1 <= len(salt) <= 255 or not 1 < verifier < GROUPS[bits][0]:
        raise UserStoreError(f"user {name!r}: salt or verifier out of range")
    return bits


def _decode_user(name: str, entry: Any) -> Record:
    if normalize_username(name) != name or not isinstance(entry, dict):
        raise UserStoreError(f"user {name!r}: malformed entry")
    group = entry.get("group")
    if not isinstance(group, int) or isinstance(group, bool):
        raise UserStoreError(f"user {name!r}: group must be a number of bits")
    salt = _unb64(entry.get("salt"), f"user {name!r}: salt")
    verifier = int.from_bytes(_unb64(entry.get("verifier"), f"user {name!r}: verifier"), "big")
    check_entry(name, group, salt, verifier)
    allowed = entry.get("allowed_names")
    if allowed is not None and not isinstance(allowed, list):
        raise UserStoreError(f"user {name!r}: allowed_names must be a list")
    created = entry.get("created", "")
    if not isinstance(created, str):
        raise UserStoreError(f"user {name!r}: created must be a string")
    return Record(group, salt, verifier, check_allowed_names(allowed), created)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise UserStoreError(f"{what} is missing")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise UserStoreError(f"{what} is not valid base64") from None
