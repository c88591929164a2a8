"""Failure counters that lock out password guessing, keyed by user name and by client address.

A key collects failures inside a sliding window; reaching `max_failures` locks it for `lockout_s`
seconds, during which `check` raises `TooManyRequests` (429 with `Retry-After`). The service checks
both the user key and the address key before it verifies a password, so a locked account is not
even tried and one address cannot spray guesses over many user names. The TLS layer uses the same
calls for failed TLS-SRP handshakes.

Memory is bounded: entries are kept in least-recently-touched order, expired ones are dropped as
they are met, and beyond `max_keys` the oldest entry is evicted.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from python_est.errors import TooManyRequests

DEFAULT_MAX_KEYS = 100_000


def user_key(user: str) -> str:
    """The limiter key for a password user (SRP or HTTP Basic share it)."""
    return "user:" + user


def address_key(address: str) -> str:
    """The limiter key for a client address; any port is dropped.

    Accepts "192.0.2.1", "192.0.2.1:4433", "[2001:db8::1]:4433" and a bare "2001:db8::1". An
    IPv6 client is keyed by its /64, since one host usually holds a whole /64 to rotate through;
    an IPv4-mapped IPv6 address counts as its IPv4 address.
    """
    host = address.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "addr:" + host.lower()
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"addr:{ip.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((ip, 64), strict=False)}"
    return f"addr:{ip}"


class FailureCounter(Protocol):
    """The failure counters the service and the TLS layer use.

    `FailureLimiter` keeps them in memory for one process;
    `python_est.pgsql.DatabaseFailureLimiter` shares them between the instances of a fleet.
    """

    def check(self, keys: Iterable[str]) -> None: ...
    def record_failure(self, keys: Iterable[str]) -> None: ...
    def record_success(self, keys: Iterable[str]) -> None: ...


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class FailureLimiter:
    """Counts authentication failures per key and locks keys that fail too often.

    Thread-safe; one instance serves every connection.
    """

    def __init__(
        self,
        max_failures: int = 5,
        window_s: float = 300,
        lockout_s: float = 300,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        """Create a limiter.

        Args:
            max_failures: failures inside `window_s` that lock a key.
            window_s: length of the sliding failure window, in seconds.
            lockout_s: how long a locked key stays locked, in seconds.
            clock: monotonic time source in seconds (tests pass a fake one).
            max_keys: most keys remembered; the least recently touched is evicted beyond it.
        """
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0 or max_keys < 1:
            raise ValueError("limits must be positive")
        self._max_failures = max_failures
        self._window = window_s
        self._lockout = lockout_s
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def check(self, keys: Iterable[str]) -> None:
        """Raise if any of `keys` is locked.

        Raises:
            TooManyRequests: a key is locked; `retry_after` is the whole seconds left.
        """
        with self._lock:
            now = self._clock()
            remaining = 0.0
            for key in keys:
                entry = self._live_entry(key, now)
                if entry is not None and entry.locked_until > now:
                    remaining = max(remaining, entry.locked_until - now)
        if remaining > 0:
            raise TooManyRequests(
                "too many failed authentication attempts; try again later",
                retry_after=max(1, math.ceil(remaining)),
            )

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failure against each of `keys`, locking those that reach the limit."""
        with self._lock:
            now = self._clock()
            for key in keys:
                entry = self._live_entry(key, now)
                if entry is None:
                    entry = self._insert(key)
                else:
                    self._entries.move_to_end(key)
                if entry.locked_until > now:
                    continue
                entry.failures.append(now)
                while entry.failures and entry.failures[0] <= now - self._window:
                    entry.failures.popleft()
                if len(entry.failures) >= self._max_failures:
                    entry.failures.clear()
                    entry.locked_until = now + self._lockout

    def record_success(self, keys: Iterable[str]) -> None:
        """Forget the failures of `keys` (pass the user key only: an address stays counted).

        A locked key stays locked: a success cannot happen while `check` refuses the attempt.
        """
        with self._lock:
            now = self._clock()
            for key in keys:
                entry = self._live_entry(key, now)
                if entry is not None and entry.locked_until <= now:
                    del self._entries[key]

    def _live_entry(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._expired(entry, now):
            del self._entries[key]
            return None
        return entry

    def _expired(self, entry: _Entry, now: float) -> bool:
        if entry.locked_until > now:
            return False
        return not entry.failures or entry.failures[-1] <= now - self._window

    def _insert(self, key: str) -> _Entry:
        now = self._clock()
        # Drop expired entries from the old end first; evict the oldest live one only if needed.
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if not self._expired(oldest, now) and len(self._entries) < self._max_keys:
                break
            del self._entries[oldest_key]
        entry = _Entry()
        self._entries[key] = entry
        return entry
