"""SRP groups, user-name rules, verifier maths and the mapping tlslite uses as `verifierDB`."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import types
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from tlslite import mathtls
from tlslite.utils.cryptomath import powMod

from python_est.errors import UserStoreError

if TYPE_CHECKING:
    from python_est.users.fileformat import Snapshot

DEFAULT_GROUP_BITS = 2048
#: Groups `add` accepts. Smaller RFC 5054 groups arrive only through imports and are flagged weak.
ADD_GROUP_BITS = frozenset({2048, 3072, 4096})
WEAK_GROUP_BITS = frozenset({1024, 1536})
MAX_NAME_CHARS = 128
MAX_NAME_BYTES = 255
SALT_BYTES = 16
SECRET_BYTES = 32

_GROUP_INDEX = {1024: 0, 1536: 1, 2048: 2, 3072: 3, 4096: 4, 6144: 5, 8192: 6}
#: bits -> (N, g), the RFC 5054 Appendix A groups (tlslite keeps them as (g, N)).
GROUPS: Mapping[int, tuple[int, int]] = types.MappingProxyType(
    {
        bits: (int(mathtls.goodGroupParameters[i][1]), int(mathtls.goodGroupParameters[i][0]))
        for bits, i in _GROUP_INDEX.items()
    }
)
BITS_BY_GROUP: Mapping[tuple[int, int], int] = types.MappingProxyType(
    {group: bits for bits, group in GROUPS.items()}
)
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})

#: What tlslite's verifierDB returns: (N, g, salt, verifier).
SrpEntry = tuple[int, int, bytes, int]


def normalize_username(user: str) -> str:
    """Return the stored (NFC) form of `user`.

    Raises:
        UserStoreError: the name is empty, too long, or holds a forbidden character.
    """
    if not isinstance(user, str) or not user:
        raise UserStoreError("user name must be a non-empty string")
    name = unicodedata.normalize("NFC", user)
    if len(name) > MAX_NAME_CHARS:
        raise UserStoreError(f"user name is longer than {MAX_NAME_CHARS} characters")
    if ":" in name:
        raise UserStoreError("user name must not contain ':'")
    if name != name.strip():
        raise UserStoreError("user name must not start or end with whitespace")
    check_text(name, "user name")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise UserStoreError(f"user name is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    return name


def check_text(text: str, what: str) -> None:
    """Refuse control characters, lone surrogates and line separators in `text`."""
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text):
        raise UserStoreError(f"{what} must not contain control characters")


def password_bytes(password: str) -> bytes:
    """The UTF-8 bytes of a new password; refuses empty or non-text passwords."""
    if not isinstance(password, str) or not password:
        raise UserStoreError("password must be a non-empty string")
    try:
        return password.encode("utf-8")
    except UnicodeEncodeError:
        raise UserStoreError("password is not valid Unicode text") from None


def check_allowed_names(names: Iterable[str] | None) -> tuple[str, ...] | None:
    """Validate a list of names a user may request; None means "the user's own name"."""
    if names is None:
        return None
    if isinstance(names, str):
        raise UserStoreError("allowed names must be a list of names, not one string")
    result = tuple(names)
    if not result:
        raise UserStoreError("allowed names must not be empty")
    for name in result:
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise UserStoreError("each allowed name must be a non-empty string of 255 characters")
        check_text(name, "allowed name")
    return result


def compute_verifier(group_bits: int, salt: bytes, user: bytes, password: bytes) -> int:
    """v = g^x mod N with x = SHA1(salt | SHA1(user ":" password)) (RFC 5054 §2.4)."""
    n, g = GROUPS[group_bits]
    x = mathtls.makeX(bytearray(salt), bytearray(user), bytearray(password))
    return int(powMod(g, x, n))


def new_salt() -> bytes:
    """A fresh random salt whose first byte is not zero."""
    # OpenSSL (so curl and libest) treats the salt as a number and drops leading zero bytes
    # before hashing; tlslite hashes the bytes as sent. A non-zero first byte works with both.
    while True:
        salt = secrets.token_bytes(SALT_BYTES)
        if salt[0]:
            return salt


def int_bytes(value: int, modulus: int) -> bytes:
    """`value` big-endian, padded to the byte length of `modulus`."""
    return value.to_bytes((modulus.bit_length() + 7) // 8, "big")


def simulated_salt(secret: bytes, user: bytes) -> bytes:
    """The stable fake salt of an unknown user (RFC 5054 §2.5.1.3)."""
    salt = bytearray(hmac.digest(secret, b"salt" + user, hashlib.sha256)[:SALT_BYTES])
    salt[0] = salt[0] or 1  # real salts never start with a zero byte (see new_salt)
    return bytes(salt)


def simulated_entry(secret: bytes, user: bytes, group_bits: int) -> SrpEntry:
    """A stable fake (N, g, salt, verifier) for an unknown user (RFC 5054 §2.5.1.3)."""
    # A real user's entry is stored numbers read back, with no arithmetic. The fake one must cost
    # the same, on the first probe of a name as on every later one, or the time to the
    # ServerKeyExchange tells real names from unknown ones. So the fake verifier is a keyed hash
    # reduced mod N, not g^x mod N (an exponentiation): v never leaves the server, and
    # B = k*v + g^b (RFC 5054 §2.5.3) hides which kind of number it is.
    n, g = GROUPS[group_bits]
    seed = hmac.digest(secret, b"verifier" + user, hashlib.sha256)
    wide = hashlib.shake_256(seed).digest((n.bit_length() + 7) // 8 + 16)
    return n, g, simulated_salt(secret, user), int.from_bytes(wide, "big") % n or 1


class SrpVerifiers(Mapping[bytes, SrpEntry]):
    """The store as tlslite's `verifierDB`: `db[username_bytes] -> (N, g, salt, verifier)`.

    Lookups always see the store's current state. An unknown name gets a deterministic simulated
    entry instead of KeyError, so tlslite never sends `unknown_psk_identity` and an unknown user
    fails exactly like a wrong password (`bad_record_mac`). `in`, `len()` and iteration cover
    the real users only. The mapping is always true, even when empty, because tlslite offers SRP
    suites only when `verifierDB` is truthy.
    """

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def __getitem__(self, key: bytes) -> SrpEntry:
        current = self._snapshot()
        user = bytes(key)
        record = current.users.get(_decoded(user))
        if record is None:
            return simulated_entry(current.secret, user, current.simulated_bits)
        n, g = GROUPS[record.group_bits]
        return n, g, record.salt, record.verifier

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes | bytearray):
            return False
        return _decoded(bytes(key)) in self._snapshot().users

    def __iter__(self) -> Iterator[bytes]:
        return (name.encode("utf-8") for name in self._snapshot().users)

    def __len__(self) -> int:
        return len(self._snapshot().users)

    def __bool__(self) -> bool:
        return True


def _decoded(user: bytes) -> str:
    # Not UTF-8 means not a stored name; "" is never one either.
    try:
        return user.decode("utf-8")
    except UnicodeDecodeError:
        return ""
