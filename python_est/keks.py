"""Key-encryption keys (KEKs) the operator registers for symmetric key return (RFC 7030 §4.4.1.1).

A /serverkeygen CSR names a KEK by its DecryptKeyIdentifier; the server wraps the content key of
the returned EnvelopedData with it (KEKRecipientInfo, AES key wrap). KEKs are per CA label: a
CSR on one label cannot name a KEK registered for another. Identifiers are short ASCII names;
the DecryptKeyIdentifier octets are the name's ASCII bytes.

The store is one JSON file in the state directory, written atomically with mode 0600 like the
other secrets, and read on each lookup, so `python-est kek add` takes effect without a reload.
Key bytes never appear in a repr, a log line or a listing.
"""

from __future__ import annotations

import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from python_est.fileio import atomic_write

KEK_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
KEK_LENGTHS = (16, 24, 32)  # AES-128/192/256 key wrap (RFC 3394)


@dataclass(frozen=True)
class Kek:
    """One registered KEK; `key` stays out of the repr."""

    label: str
    kek_id: str
    added: str
    key: bytes = field(repr=False)

    @property
    def bits(self) -> int:
        return len(self.key) * 8


def parse_kek(text: bytes) -> bytes:
    """The key bytes of a KEK given as hex (the form `openssl cms -secretkey` takes).

    Raises:
        ValueError: not hex of a 128, 192 or 256-bit key.
    """
    digits = b"".join(text.split())
    try:
        key = binascii.unhexlify(digits)
    except (binascii.Error, ValueError):
        raise ValueError("a KEK is given in hex (32, 48 or 64 hex digits)") from None
    if len(key) not in KEK_LENGTHS:
        raise ValueError(f"a KEK must be 128, 192 or 256 bits, not {len(key) * 8}")
    return key


def check_kek_id(kek_id: str) -> None:
    """Raise ValueError unless `kek_id` is 1 to 64 of [A-Za-z0-9._-]."""
    if not KEK_ID_RE.fullmatch(kek_id):
        raise ValueError("a KEK id is 1 to 64 characters of A-Z a-z 0-9 . _ -")


class KekStore:
    """The KEK file at `path` (absent: no KEKs)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    @property
    def path(self) -> Path:
        return self._path

    def lookup(self, label: str, identifier: bytes) -> bytes | None:
        """The key of KEK `identifier` on `label`, None when there is none.

        Raises:
            ValueError: the file cannot be read as a KEK store.
        """
        try:
            kek_id = identifier.decode("ascii")
        except UnicodeDecodeError:
            return None
        for kek in self.all():
            if kek.label == label and kek.kek_id == kek_id:
                return kek.key
        return None

    def all(self) -> list[Kek]:
        """Every registered KEK, by label then id.

        Raises:
            ValueError: the file cannot be read as a KEK store.
        """
        try:
            data = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self._path}: not a KEK store ({exc})") from None
        try:
            keks = [
                Kek(item["label"], item["id"], item["added"], bytes.fromhex(item["key"]))
                for item in data["keks"]
            ]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{self._path}: not a KEK store") from None
        return sorted(keks, key=lambda kek: (kek.label, kek.kek_id))

    def add(self, label: str, kek_id: str, key: bytes, *, replace: bool = False) -> bool:
        """Register `key` as `kek_id` on `label`; True when it replaced an existing one.

        Raises:
            ValueError: a bad id or key, or the id exists on the label and `replace` is False.
        """
        check_kek_id(kek_id)
        if len(key) not in KEK_LENGTHS:
            raise ValueError("a KEK must be 128, 192 or 256 bits")
        keks = self.all()
        kept = [k for k in keks if (k.label, k.kek_id) != (label, kek_id)]
        if len(kept) != len(keks) and not replace:
            raise ValueError(
                f"KEK {kek_id!r} already exists on label {label!r}; "
                "pass --replace to overwrite it (clients holding the old key lose access)"
            )
        added = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._write([*kept, Kek(label, kek_id, added, key)])
        return len(kept) != len(keks)

    def remove(self, label: str, kek_id: str) -> bool:
        """Remove `kek_id` from `label`; False when it was not there."""
        keks = self.all()
        kept = [k for k in keks if (k.label, k.kek_id) != (label, kek_id)]
        if len(kept) == len(keks):
            return False
        self._write(kept)
        return True

    def _write(self, keks: list[Kek]) -> None:
        items = [
            {"label": k.label, "id": k.kek_id, "added": k.added, "key": k.key.hex()} for k in keks
        ]
        atomic_write(self._path, json.dumps({"keks": items}, indent=1).encode() + b"\n")
