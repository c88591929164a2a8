"""Pre-registered devices and their one-time enrollment codes, in `STATE_DIR/devices.sqlite3`.

A registration says: on label L, the holder of this code may enroll exactly this subject and
these subjectAltNames, once, before this time. Codes are stored hashed with a salt each, never
in clear, in a file of mode 0600: a generated code (160 random bits) as salted SHA-256, which
no search can invert; an operator-chosen password, which may be weak, as scrypt. Checking a
generated code thus costs microseconds instead of scrypt's tens of milliseconds of CPU, which
anyone could otherwise demand per guess.

Using a code is a claim, not a read: `claim` is one conditional UPDATE (unused, unclaimed, not
expired -> claimed by this attempt), so of two enrollments racing with one code exactly one
wins, in one process or several sharing the state directory. The winner signs, then `mark_used`
records the serial; if signing fails, `release` gives the code back.

A code may also be a TLS-SRP password (RFC 5054): beside the hash, `add` stores the SRP
verifier the caller computed (the `users` layer owns the maths), and `srp_entry` hands the TLS
layer the one usable SRP registration of a name. The handshake does not know the label, so a
name has an SRP verifier on one label at a time (`add` refuses a second unused one).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from python_est.errors import InternalError, Unavailable, UserStoreError

# RFC 7914 parameters as Python's docs and OWASP suggest for interactive logins (~16 MiB).
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32, "maxmem": 64 * 1024 * 1024}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices (
    label TEXT NOT NULL,
    name TEXT NOT NULL,
    subject TEXT NOT NULL,
    sans TEXT NOT NULL,
    salt BLOB NOT NULL,
    code_hash BLOB NOT NULL,
    scheme TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    claim TEXT,
    used_at TEXT,
    serial TEXT,
    PRIMARY KEY (label, name)
)
"""
# Files made before codes worked over TLS-SRP lack these columns; `__init__` adds them.
_SRP_COLUMNS = {"srp_group": "INTEGER", "srp_salt": "BLOB", "srp_verifier": "BLOB"}
_FAST, _SLOW = "sha256", "scrypt"
_COLUMNS = (
    "label, name, subject, sans, salt, code_hash, created_at, expires_at, used_at, serial, "
    "srp_verifier IS NOT NULL"
)
#: What `add` stores and `srp_entry` returns for TLS-SRP: (group bits, salt, verifier).
SrpVerifier = tuple[int, bytes, int]


@dataclass(frozen=True)
class Registration:
    """One registered device.

    Attributes:
        label: the CA label it may enroll on ("" for the default).
        name: its name, the HTTP Basic user name that goes with the code.
        subject: the exact subject it may obtain (RFC 4514).
        sans: the exact subjectAltNames ("DNS:x", "IP:..." as the ledger writes them).
        expires_at: when the code stops working (None: never).
        used_at, serial: set once a certificate was issued with the code.
        srp: the code also works as a TLS-SRP password.
    """

    label: str
    name: str
    subject: str
    sans: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    used_at: datetime | None = None
    serial: str | None = None
    srp: bool = False

    def usable(self, now: datetime) -> bool:
        return self.used_at is None and (self.expires_at is None or now < self.expires_at)


class DeviceRegistry:
    """The registrations of one state directory (see the module docstring).

    Args:
        path: the SQLite file; created with mode 0600 when missing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            present = {str(row[1]) for row in db.execute("PRAGMA table_info(devices)")}
            for column, kind in _SRP_COLUMNS.items():
                if column not in present:
                    db.execute(f"ALTER TABLE devices ADD COLUMN {column} {kind}")

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # One connection per call: safe from any worker thread, and every call sees what the
        # CLI or another process committed.
        # A full, read-only or unreadable file refuses the request with a 503, as the ledger
        # and the lockout counters do, rather than a 500 (docs/reliability.md). A duplicate name
        # (IntegrityError) is the caller's to explain.
        if not self.path.exists():
            # Deleted under the running server: never recreate it empty (the registrations and
            # their used marks would be lost); the ledger refuses the same way.
            raise InternalError("the device registry file is gone")
        try:
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            try:
                yield db
            finally:
                db.close()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error:
            raise Unavailable("the device registry is unavailable", retry_after=30) from None

    def add(
        self,
        registration: Registration,
        code: str,
        *,
        chosen: bool = False,
        srp: SrpVerifier | None = None,
    ) -> None:
        """Register a device with its code (hashed here).

        Args:
            registration: the device.
            code: its one-time code.
            chosen: the code is an operator's password, not `generate_code`'s: hash it slowly.
            srp: the code's TLS-SRP verifier, when it may also be an SRP password.

        Raises:
            UserStoreError: the label already has a device of that name, or `srp` is given and
                another label has an unused SRP registration of that name.
        """
        salt = secrets.token_bytes(16)
        scheme = _SLOW if chosen else _FAST
        bits, srp_salt, verifier = srp if srp is not None else (None, None, None)
        try:
            with self._connect() as db:
                db.execute("BEGIN IMMEDIATE")  # the check below and the insert are one step
                if srp is not None and self._srp_labels(db, registration.name):
                    db.execute("ROLLBACK")
                    raise UserStoreError(
                        f"device name {registration.name!r} already has an unused TLS-SRP code "
                        f"on label {self._srp_labels(db, registration.name)[0]!r}; a TLS-SRP "
                        "handshake names no label, so choose another --name"
                    )
                db.execute(
                    "INSERT INTO devices (label, name, subject, sans, salt, code_hash, "
                    "created_at, expires_at, scheme, srp_group, srp_salt, srp_verifier) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        registration.label,
                        registration.name,
                        registration.subject,
                        json.dumps(list(registration.sans)),
                        salt,
                        _hash(code, salt, scheme),
                        _text(registration.created_at),
                        _text(registration.expires_at),
                        scheme,
                        bits,
                        srp_salt,
                        None if verifier is None else _int_bytes(verifier),
                    ),
                )
                db.execute("COMMIT")
        except sqlite3.IntegrityError:
            raise UserStoreError(
                f"label {registration.label!r} already has a device named {registration.name!r}"
            ) from None

    def get(self, label: str, name: str) -> Registration | None:
        with self._connect() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE label = ? AND name = ?", (label, name)
            ).fetchone()
        return None if row is None else _registration(row)

    def list(self, label: str | None = None) -> list[Registration]:
        with self._connect() as db:
            if label is None:
                rows = db.execute(f"SELECT {_COLUMNS} FROM devices ORDER BY label, name")
            else:
                rows = db.execute(
                    f"SELECT {_COLUMNS} FROM devices WHERE label = ? ORDER BY name", (label,)
                )
            return [_registration(row) for row in rows.fetchall()]

    def remove(self, label: str, name: str) -> bool:
        """Remove a registration; False when there was none."""
        with self._connect() as db:
            cursor = db.execute("DELETE FROM devices WHERE label = ? AND name = ?", (label, name))
            return cursor.rowcount == 1

    def srp_labels(self, name: str, *, unused: bool = True) -> Sequence[str]:
        """The labels where `name` has an unused TLS-SRP code (expired ones included), or with
        `unused=False` any TLS-SRP code, used ones too."""
        with self._connect() as db:
            return self._srp_labels(db, name, unused)

    @staticmethod
    def _srp_labels(db: sqlite3.Connection, name: str, unused: bool = True) -> Sequence[str]:
        rows = db.execute(
            "SELECT label FROM devices WHERE name = ? AND srp_verifier IS NOT NULL "
            f"{'AND used_at IS NULL ' if unused else ''}ORDER BY label",
            (name,),
        )
        return [str(row[0]) for row in rows.fetchall()]

    def srp_entry(self, name: str, now: datetime) -> SrpVerifier | None:
        """The TLS-SRP verifier of the one usable SRP registration of `name`; None when there
        is none (used, expired, unknown) or, against `add`'s rule, more than one."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT srp_group, srp_salt, srp_verifier FROM devices WHERE name = ? "
                "AND srp_verifier IS NOT NULL AND used_at IS NULL "
                "AND (expires_at IS NULL OR expires_at > ?)",
                (name, _text(now)),
            ).fetchall()
        if len(rows) != 1:
            return None
        bits, salt, verifier = rows[0]
        return int(bits), bytes(salt), int.from_bytes(bytes(verifier), "big")

    def check_code(self, label: str, name: str, code: str) -> bool:
        """Whether `code` is the device's code (whatever its state), in constant time."""
        with self._connect() as db:
            row = db.execute(
                "SELECT salt, code_hash, scheme FROM devices WHERE label = ? AND name = ?",
                (label, name),
            ).fetchone()
        if row is None:
            return False
        return hmac.compare_digest(_hash(code, bytes(row[0]), str(row[2])), bytes(row[1]))

    def claim(self, label: str, name: str, token: str, now: datetime) -> bool:
        """Take the code for one enrollment attempt; False when it is used, claimed or expired."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE devices SET claim = ? WHERE label = ? AND name = ? AND claim IS NULL "
                "AND used_at IS NULL AND (expires_at IS NULL OR expires_at > ?)",
                (token, label, name, _text(now)),
            )
            return cursor.rowcount == 1

    def release(self, label: str, name: str, token: str) -> None:
        """Give back a claim whose enrollment failed before anything was issued."""
        with self._connect() as db:
            db.execute(
                "UPDATE devices SET claim = NULL WHERE label = ? AND name = ? AND claim = ? "
                "AND used_at IS NULL",
                (label, name, token),
            )

    def mark_used(self, label: str, name: str, token: str, serial: str, now: datetime) -> None:
        """Record the certificate issued under this claim; the code never works again."""
        with self._connect() as db:
            db.execute(
                "UPDATE devices SET used_at = ?, serial = ? WHERE label = ? AND name = ? "
                "AND claim = ?",
                (_text(now), serial, label, name, token),
            )

    def find_usable(self, label: str, subject: str, now: datetime) -> Sequence[Registration]:
        """The label's usable registrations for this RFC 4514 subject text (the caller compares
        the names exactly)."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM devices WHERE label = ? AND subject = ? "
                "AND claim IS NULL AND used_at IS NULL ORDER BY name",
                (label, subject),
            ).fetchall()
        return [r for r in map(_registration, rows) if r.usable(now)]


def _hash(code: str, salt: bytes, scheme: str) -> bytes:
    if scheme == _SLOW:
        return hashlib.scrypt(code.encode(), salt=salt, **_SCRYPT)
    return hashlib.sha256(salt + code.encode()).digest()


def _int_bytes(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8 or 1, "big")


def _text(moment: datetime | None) -> str | None:
    # One fixed width, so that SQL compares instants as text.
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _moment(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _registration(row: tuple[object, ...]) -> Registration:
    label, name, subject, sans, _salt, _digest, created, expires, used, serial, srp = row
    created_at = _moment(str(created))
    assert created_at is not None
    return Registration(
        label=str(label),
        name=str(name),
        subject=str(subject),
        sans=tuple(json.loads(str(sans))),
        created_at=created_at,
        expires_at=_moment(None if expires is None else str(expires)),
        used_at=_moment(None if used is None else str(used)),
        serial=None if serial is None else str(serial),
        srp=bool(srp),
    )
