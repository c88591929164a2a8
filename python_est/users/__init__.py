"""The SRP user store: one verifier file serves TLS-SRP (RFC 5054) and HTTP Basic.

The file is JSON, written atomically with mode 0600, and holds no plaintext password::

    {"format": "python-est-users", "version": 1, "secret": "<base64, 32 bytes>",
     "users": {"alice": {"group": 2048, "salt": "<base64>", "verifier": "<base64>",
                         "allowed_names": ["alice", "dev1.example"], "created": "<ISO 8601>"}}}

`verifier` is v = g^x mod N as big-endian bytes padded to the length of N, with
x = SHA1(salt | SHA1(user ":" password)) (RFC 5054 §2.4) and (N, g) the RFC 5054 group named by
`group`. `allowed_names` is optional (absent means the user's own name). `secret` is a server key,
not a password: it derives the simulated entries for unknown users (RFC 5054 §2.5.1.3), and
keeping it in the file keeps them stable across restarts.

User names are normalized to Unicode NFC (a light SASLprep: no case folding or mapping) and must be
at most 128 characters and 255 UTF-8 bytes (RFC 5054 §2.8.1 `srp_I<1..2^8-1>`), with no control
characters, no ':' (HTTP Basic splits at the first colon) and no surrounding whitespace. An SRP
client must send the NFC form; ASCII names are unaffected. A new name that equals an existing one
under `python_est.usernames.fold_username` (NFKC and case folding) is refused, so look-alike
accounts cannot exist; a login still needs the stored name itself. Passwords are used exactly as
given (UTF-8, no normalization), so that SRP clients and HTTP Basic hash the same bytes.

Modules: `srp` (groups, names, verifier maths, the tlslite mapping), `fileformat` (the JSON file),
`imports` (`openssl srp` files and tlslite VerifierDB files), `accounts` (the rules both stores
apply: new records, password changes and checks, lookups, imports), `store` (`UserStore`),
`directory` (`UserDirectory`, the Protocol both stores meet) and `database` with `dbrows`
(`DatabaseUserStore`, the users in PostgreSQL for several instances; imported only when a database
is configured).
"""

from __future__ import annotations

from python_est.users.directory import UserDirectory
from python_est.users.fileformat import UserInfo
from python_est.users.srp import (
    ADD_GROUP_BITS,
    DEFAULT_GROUP_BITS,
    GROUPS,
    MAX_NAME_BYTES,
    MAX_NAME_CHARS,
    WEAK_GROUP_BITS,
    SrpEntry,
    SrpVerifiers,
    normalize_username,
)
from python_est.users.store import UserStore

__all__ = [
    "ADD_GROUP_BITS",
    "DEFAULT_GROUP_BITS",
    "GROUPS",
    "MAX_NAME_BYTES",
    "MAX_NAME_CHARS",
    "WEAK_GROUP_BITS",
    "SrpEntry",
    "SrpVerifiers",
    "UserDirectory",
    "UserInfo",
    "UserStore",
    "normalize_username",
]
