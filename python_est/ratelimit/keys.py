"""Counter keys: one user, one address, one (user, address) pair, and a pair's good mark.

User names are keyed by `fold_username`, so look-alike spellings of one account (a KELVIN SIGN
for a K, "ß" for "ss") share its counters. Keys are plain text so that every store (memory,
SQLite, PostgreSQL) keeps them in one column, and `parse_key` reads them back for listings.
A folded user name may hold any character except control characters; an address key never
holds a space, so a pair key is "<address> <user>" split at its first space.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from python_est.usernames import fold_username

USER = "user"
ADDRESS = "addr"
PAIR = "pair"
GOOD = "good"
#: GOOD keys mark a recent success; they are never listed as lockouts.
# Stored names have at most 128 characters; a longer one sent by a client is cut before folding
# (NFKC can expand a character up to 18 times), so no client makes a key of unbounded size.
_MAX_USER_CHARS = 256


def user_key(user: str) -> str:
    """The counter of one account over all addresses."""
    return f"{USER}:{_user(user)}"


def address_key(address: str) -> str:
    """The limiter key for a client address; any port is dropped.

    Accepts "192.0.2.1", "192.0.2.1:4433", "[2001:db8::1]:4433" and a bare "2001:db8::1". An
    IPv6 client is keyed by its /64, since one host usually holds a whole /64 to rotate through;
    an IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    return f"{ADDRESS}:{_address(address)}"


def pair_key(user: str, address: str) -> str:
    """The counter of one account from one address."""
    return f"{PAIR}:{_address(address)} {_user(user)}"


def good_key(user: str, address: str) -> str:
    """The mark of a recent successful login of `user` from `address`."""
    return f"{GOOD}:{_address(address)} {_user(user)}"


@dataclass(frozen=True)
class KeyParts:
    """What a key counts: its kind, and the folded user and/or the address it covers."""

    kind: str
    user: str | None
    address: str | None


def parse_key(key: str) -> KeyParts:
    """Split a key made by the functions above."""
    kind, _, rest = key.partition(":")
    if kind == USER:
        return KeyParts(kind, rest, None)
    if kind == ADDRESS:
        return KeyParts(kind, None, rest)
    address, _, user = rest.partition(" ")
    return KeyParts(kind, user, address)


def _user(user: str) -> str:
    return fold_username(user[:_MAX_USER_CHARS])


def _address(address: str) -> str:
    host = address.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return _host(host)


# A password login derives its address keys five times (check, then success or failure), and
# parsing an IPv6 address costs ~30 µs; the key depends on the host text alone (the port is
# gone), so the keys of recent hosts are remembered.
@functools.lru_cache(maxsize=1024)
def _host(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "".join(host.lower().split())  # never a space: pair keys split at the first one
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
