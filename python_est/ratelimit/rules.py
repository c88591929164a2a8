"""The lockout rule, written once over any counter store (memory, SQLite or PostgreSQL).

Three counters see every failed password login (HTTP Basic, TLS-SRP, the bootstrap page):

- the **pair** (this user name from this address) locks at `max_failures`: the guesser who
  targets one account from one place is stopped as before, and nobody else is;
- the **account** (this user name from any address) locks at `account_max_failures`: a guesser
  spreading over many addresses is stopped;
- the **address** (any user name from this address) locks at `address_max_failures`: a spray of
  many names from one place is stopped. Half-open SRP handshakes (a ServerKeyExchange the client
  never answers) count here too.

A locked pair refuses that pair. A locked account or address refuses every login it covers,
except from a *known-good pair*: a user name that logged in successfully from that address within
`known_good` seconds. So a user with the right password behind a busy NAT or an RA still gets in
while a guesser behind the same address is locked, and a guesser cannot lock a device out of its
own account from elsewhere. The pair counter is never exempt: a known-good pair that starts
failing is locked like any other.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from python_est.errors import TooManyRequests
from python_est.ratelimit.keys import (
    ADDRESS,
    PAIR,
    USER,
    address_key,
    good_key,
    pair_key,
    parse_key,
    user_key,
)


@dataclass(frozen=True)
class Limits:
    """The [auth] thresholds, in failures and seconds."""

    max_failures: int = 5
    account_max_failures: int = 20
    address_max_failures: int = 30
    window: float = 300
    lockout: float = 300
    known_good: float = 30 * 86400

    def __post_init__(self) -> None:
        if min(self.max_failures, self.account_max_failures, self.address_max_failures) < 1:
            raise ValueError("failure limits must be positive")
        if min(self.window, self.lockout, self.known_good) <= 0:
            raise ValueError("time limits must be positive")


class CounterStore(Protocol):
    """Where the counters live; every method is one short transaction."""

    def status(self, keys: Sequence[str], good: str | None) -> tuple[dict[str, float], bool]:
        """Seconds left of each locked key among `keys`, and whether `good` is marked."""
        ...

    def fail(self, limits: Sequence[tuple[str, int]], window: float, lockout: float) -> None:
        """One failure on each (key, limit); a key with `limit` failures in `window` locks."""
        ...

    def succeed(self, forget: str, good: str, good_for: float) -> None:
        """Drop the failures of `forget`; mark `good` for `good_for` seconds."""
        ...

    def locks(self) -> list[tuple[str, float]]:
        """Every locked key with the seconds left, the good marks excluded."""
        ...

    def clear(self, keys: Sequence[str]) -> None:
        """Drop the locks and failures of `keys`."""
        ...

    def close(self) -> None:
        """Release what the store holds open (a shared database stays with its owner)."""
        ...


@dataclass(frozen=True)
class Lockout:
    """One locked counter, for `python-est lockouts list` and `clear`."""

    kind: str  # "pair", "user" or "addr"
    user: str | None  # the folded user name
    address: str | None
    remaining: int  # whole seconds, rounded up

    @property
    def who(self) -> str:
        """Whom the lock refuses; the user name escaped (it comes from a client)."""
        return {
            PAIR: f"user {self.user!r} from {self.address}",
            USER: f"user {self.user!r} from every address",
            ADDRESS: f"address {self.address} (except users recently logged in from it)",
        }[self.kind]

    def describe(self) -> str:
        """One line for an operator: whom the lock refuses and for how long."""
        return f"{self.who}: locked for another {self.remaining} s"


class FailureCounter(Protocol):
    """What the service, the bootstrap page and the TLS layer ask of the limiter."""

    def check(self, user: str | None, address: str) -> None: ...
    def record_failure(self, user: str | None, address: str) -> None: ...
    def record_success(self, user: str, address: str) -> None: ...
    def record_incomplete(self, address: str) -> None: ...


class LoginLimiter:
    """The rule of the module docstring over `store`; a `FailureCounter`, thread-safe."""

    def __init__(self, store: CounterStore, limits: Limits) -> None:
        self._store = store
        self._limits = limits

    @property
    def limits(self) -> Limits:
        return self._limits

    def close(self) -> None:
        self._store.close()

    def check(self, user: str | None, address: str) -> None:
        """Refuse a login attempt that a lock covers; call before checking the password.

        Args:
            user: the user name as sent (None when the client sent none).
            address: the client address.

        Raises:
            TooManyRequests: 429; `retry_after` and the detail give the seconds left.
        """
        addr = address_key(address)
        if user is None:
            locked, _ = self._store.status([addr], None)
            _refuse(locked, [(addr, "from this address")])
            return
        pair, account = pair_key(user, address), user_key(user)
        locked, known_good = self._store.status([pair, account, addr], good_key(user, address))
        _refuse(locked, [(pair, "for this user name from this address")])
        if not known_good:
            _refuse(locked, [(account, "for this user name"), (addr, "from this address")])

    def record_failure(self, user: str | None, address: str) -> None:
        """Count a wrong password (or an unknown user name) on all three counters."""
        limits = self._limits
        counts = [(address_key(address), limits.address_max_failures)]
        if user is not None:
            counts += [
                (pair_key(user, address), limits.max_failures),
                (user_key(user), limits.account_max_failures),
            ]
        self._store.fail(counts, limits.window, limits.lockout)

    def record_success(self, user: str, address: str) -> None:
        """Forget the pair's failures and mark it known-good; the other counters keep counting."""
        self._store.succeed(
            pair_key(user, address), good_key(user, address), self._limits.known_good
        )

    def record_incomplete(self, address: str) -> None:
        """Count a login abandoned after the server's work (a half-open SRP handshake)."""
        limits = self._limits
        self._store.fail(
            [(address_key(address), limits.address_max_failures)], limits.window, limits.lockout
        )

    def lockouts(self) -> list[Lockout]:
        """Every lock in force, longest first."""
        found = []
        for key, remaining in self._store.locks():
            parts = parse_key(key)
            found.append(Lockout(parts.kind, parts.user, parts.address, _seconds(remaining)))
        return sorted(found, key=lambda item: (-item.remaining, item.kind, str(item.user)))

    def clear(self, target: str | None = None) -> list[Lockout]:
        """Lift the locks that cover `target` (a user name or an address; None: all of them).

        A user name matches in any spelling that folds to the same account; an address matches
        its own lock and the pair locks from it.

        Returns:
            What was lifted (empty when nothing was locked).
        """
        chosen = [item for item in self.lockouts() if _covers(item, target)]
        self._store.clear([_key_of(item) for item in chosen])
        return chosen


def _refuse(locked: dict[str, float], checks: Sequence[tuple[str, str]]) -> None:
    for key, what in checks:
        if key in locked:
            seconds = _seconds(locked[key])
            raise TooManyRequests(
                f"too many failed logins {what}; locked for another {seconds} s",
                retry_after=seconds,
            )


def _seconds(remaining: float) -> int:
    return max(1, math.ceil(remaining))


def _covers(item: Lockout, target: str | None) -> bool:
    if target is None:
        return True
    folded = parse_key(user_key(target)).user
    address = parse_key(address_key(target)).address
    return item.user == folded or (item.address is not None and item.address == address)


def _key_of(item: Lockout) -> str:
    if item.kind == USER:
        return f"{USER}:{item.user}"
    if item.kind == ADDRESS:
        return f"{ADDRESS}:{item.address}"
    return f"{PAIR}:{item.address} {item.user}"
