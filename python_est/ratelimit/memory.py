"""`MemoryCounters`: the counters in one process's memory (tests, and servers without state).

Memory is bounded: entries are kept in least-recently-touched order, expired ones are dropped as
they are met, and beyond `max_keys` the oldest entry is evicted.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DEFAULT_MAX_KEYS = 100_000


@dataclass
class _Entry:
    failures: deque[float] = field(default_factory=deque)
    until: float = 0.0  # locked (or, for a good mark, marked) until this time
    window: float = 0.0


class MemoryCounters:
    """A `CounterStore` in memory. Thread-safe.

    Args:
        clock: time source in seconds (tests pass a fake one).
        max_keys: most keys remembered; the least recently touched is evicted beyond it.
    """

    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_keys: int = DEFAULT_MAX_KEYS
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._clock = clock
        self._max_keys = max_keys
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def status(self, keys: Sequence[str], good: str | None) -> tuple[dict[str, float], bool]:
        with self._lock:
            now = self._clock()
            locked = {}
            for key in keys:
                entry = self._live(key, now)
                if entry is not None and entry.until > now:
                    locked[key] = entry.until - now
            mark = None if good is None else self._live(good, now)
            return locked, mark is not None and mark.until > now

    def fail(self, limits: Sequence[tuple[str, int]], window: float, lockout: float) -> None:
        with self._lock:
            now = self._clock()
            for key, limit in limits:
                entry = self._live(key, now) or self._insert(key, now)
                self._entries.move_to_end(key)
                if entry.until > now:
                    continue
                entry.window = window
                entry.failures.append(now)
                while entry.failures and entry.failures[0] <= now - window:
                    entry.failures.popleft()
                if len(entry.failures) >= limit:
                    entry.failures.clear()
                    entry.until = now + lockout

    def succeed(self, forget: str, good: str, good_for: float) -> None:
        with self._lock:
            now = self._clock()
            entry = self._live(forget, now)
            if entry is not None:
                entry.failures.clear()
            mark = self._live(good, now) or self._insert(good, now)
            mark.until = now + good_for
            self._entries.move_to_end(good)

    def locks(self) -> list[tuple[str, float]]:
        with self._lock:
            now = self._clock()
            return [
                (key, entry.until - now)
                for key, entry in list(self._entries.items())
                if not key.startswith("good:") and self._live(key, now) and entry.until > now
            ]

    def clear(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._entries.pop(key, None)

    def close(self) -> None:
        """Nothing to release."""

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if _expired(entry, now):
            del self._entries[key]
            return None
        return entry

    def _insert(self, key: str, now: float) -> _Entry:
        # Drop expired entries from the old end first; evict the oldest live one only if needed.
        while self._entries:
            oldest_key, oldest = next(iter(self._entries.items()))
            if not _expired(oldest, now) and len(self._entries) < self._max_keys:
                break
            del self._entries[oldest_key]
        entry = _Entry()
        self._entries[key] = entry
        return entry


def _expired(entry: _Entry, now: float) -> bool:
    if entry.until > now:
        return False
    return not entry.failures or entry.failures[-1] <= now - entry.window
