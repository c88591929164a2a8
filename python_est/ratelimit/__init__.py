"""Failure counters that stop password guessing without locking out everyone behind an address.

`rules` holds the lockout rule (see its docstring) over a counter store: `MemoryCounters` (one
process), `SqliteCounters` (a file in the state directory shared by every worker and the
`python-est lockouts` command) or `database.DatabaseCounters` (a fleet; PostgreSQL, imported
only when `[ledger] url` is set). `keys` names the counters; user names are folded with
`python_est.usernames.fold_username`.
"""

from __future__ import annotations

from python_est.ratelimit.keys import address_key, good_key, pair_key, parse_key, user_key
from python_est.ratelimit.memory import MemoryCounters
from python_est.ratelimit.rules import (
    CounterStore,
    FailureCounter,
    Limits,
    Lockout,
    LoginLimiter,
)
from python_est.ratelimit.sqlite import SqliteCounters

__all__ = [
    "CounterStore",
    "FailureCounter",
    "Limits",
    "Lockout",
    "LoginLimiter",
    "MemoryCounters",
    "SqliteCounters",
    "address_key",
    "good_key",
    "pair_key",
    "parse_key",
    "user_key",
]
