"""Readers for other tools' verifier files: `openssl srp` (libest) and tlslite `VerifierDB`.

Both return `(name, Record)` pairs and import nothing themselves; the store commits them in one
write, so an import is all or nothing.
"""

from __future__ import annotations

import dbm
import importlib
from dataclasses import dataclass
from pathlib import Path

from tlslite.verifierdb import VerifierDB

from python_est.errors import UserStoreError
from python_est.users.fileformat import Record, check_entry, now
from python_est.users.srp import GROUPS, normalize_username

_SRP_B64 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz./"
_SRP_B64_VALUES = {ch: i for i, ch in enumerate(_SRP_B64)}
_RESERVED_DBM_KEY = b"--Reserved--type"
_DBM_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, *dbm.error)
# The Debian/Ubuntu package that provides each optional dbm module (both C modules, _gdbm and
# _dbm, ship in python3-gdbm); dbm.dumb is pure Python and always present.
DBM_PACKAGES = {"dbm.gnu": "python3-gdbm", "dbm.ndbm": "python3-gdbm"}


@dataclass(frozen=True)
class Imported:
    """The users found in a file, and the revoked ones that were skipped."""

    users: list[tuple[str, Record]]
    revoked: list[str]


def read_openssl_srpvfile(path: Path) -> Imported:
    """Read an `openssl srp -srpvfile` file (tab-separated TXT_DB, OpenSSL's SRP base64)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserStoreError(f"cannot read the SRP verifier file: {exc}") from None
    return parse_openssl_srpvfile(text)


def parse_openssl_srpvfile(text: str) -> Imported:
    """Parse the text of an `openssl srp` verifier file.

    Columns: type, verifier (N for `I`), salt (g for `I`), user (group id for `I`), gN id, info.
    `V` lines are users, `R` lines revoked users (skipped), `I` lines custom groups, accepted only
    when they equal an RFC 5054 group.
    """
    rows = [
        (number, line.split("\t"))
        for number, line in enumerate(text.splitlines(), 1)
        if line.strip()
    ]
    custom: dict[str, tuple[int, int]] = {}
    for number, fields in rows:
        if fields[0] == "I" and len(fields) >= 4:
            try:
                custom[fields[3]] = (_srp_b64_int(fields[1]), _srp_b64_int(fields[2]))
            except ValueError:
                raise UserStoreError(f"line {number}: malformed group (I) line") from None
    users: list[tuple[str, Record]] = []
    revoked: list[str] = []
    for number, fields in rows:
        if fields[0] == "I":
            continue
        if fields[0] not in {"V", "R"} or len(fields) not in {5, 6}:
            raise UserStoreError(f"line {number}: not an openssl srp verifier line")
        if fields[0] == "R":
            revoked.append(fields[3])
            continue
        # As OpenSSL's SRP_get_gN_by_id: the file's own I lines first, then the built-in ids.
        group = custom.get(fields[4])
        if group is None and fields[4].isdigit():
            group = GROUPS.get(int(fields[4]))
        if group is None:
            raise UserStoreError(f"line {number}: unknown SRP group id {fields[4]!r}")
        try:
            verifier, salt_number = _srp_b64_int(fields[1]), _srp_b64_int(fields[2])
        except ValueError:
            raise UserStoreError(f"line {number}: malformed verifier or salt") from None
        # OpenSSL hashes the salt as BN_bn2bin, the minimal big-endian bytes.
        salt = salt_number.to_bytes((salt_number.bit_length() + 7) // 8, "big")
        try:
            users.append(_entry(fields[3], group, salt, verifier))
        except UserStoreError as exc:
            raise UserStoreError(f"line {number}: {exc}") from None
    return Imported(users, revoked)


def verifierdb_format(path: Path) -> str | None:
    """The dbm format at `path` ("dbm.dumb": `.dat/.dir/.bak` files; "dbm.gnu"; "dbm.ndbm"), or
    None when there is none (no file, or another kind of file such as a python-est store).

    tlslite's `VerifierDB` is a dbm of whichever module Python picked when it was created; the
    format is recognised from the files themselves, so even without the module to open it.
    """
    try:
        return dbm.whichdb(str(path)) or None
    except OSError:
        return None


def read_tlslite_verifierdb(path: Path) -> Imported:
    """Read a tlslite `VerifierDB` dbm file (as made by `VerifierDB(path).create()`).

    Raises:
        UserStoreError: unreadable or malformed, or this Python lacks the dbm module of its
            format (naming the package that provides it).
    """
    kind = verifierdb_format(path)
    if kind is not None:
        try:
            importlib.import_module(kind)
        except ImportError:
            package = DBM_PACKAGES.get(kind, f"the one providing {kind}")
            raise UserStoreError(
                f"{path} is a tlslite VerifierDB in {kind} format and this Python lacks the "
                f"{kind} module: install the package {package} (Debian, Ubuntu)"
            ) from None
    try:
        db = VerifierDB(str(path))
        db.open()
    except _DBM_ERRORS as exc:
        raise UserStoreError(f"cannot open the tlslite verifier database: {exc}") from None
    users: list[tuple[str, Record]] = []
    try:
        # BaseDB.keys() compares the dbm's bytes keys with a str prefix and raises TypeError.
        for key in sorted(k for k in db.db.keys() if k != _RESERVED_DBM_KEY):
            try:
                n, g, salt, verifier = db[key]
                user = bytes(key).decode("utf-8")
            except ValueError:  # also binascii.Error and UnicodeDecodeError
                raise UserStoreError("malformed entry in the tlslite database") from None
            users.append(_entry(user, (int(n), int(g)), bytes(salt), int(verifier)))
    finally:
        db.db.close()
    return Imported(users, [])


def _entry(user: str, group: tuple[int, int], salt: bytes, verifier: int) -> tuple[str, Record]:
    name = normalize_username(user)
    if name != user:
        # The verifier hashes the name's bytes; a name changed by NFC would never match again.
        raise UserStoreError(f"user name {user!r} is not in Unicode NFC form")
    bits = check_entry(name, group, salt, verifier)
    return name, Record(bits, salt, verifier, None, now())


def _srp_b64_int(text: str) -> int:
    # OpenSSL's SRP base64 (alphabet 0-9A-Za-z./, implicitly left-padded with '0', which is 0)
    # is a big-endian base-64 number. OpenSSL turns verifier, salt, N and g into BIGNUMs, so the
    # integer carries the whole meaning and decoding digit by digit equals pad-and-decode.
    if not text:
        raise ValueError("empty number")
    value = 0
    for ch in text:
        digit = _SRP_B64_VALUES.get(ch)
        if digit is None:
            raise ValueError("not OpenSSL SRP base64")
        value = value << 6 | digit
    return value
