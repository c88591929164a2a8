"""`SqliteCounters`: the counters in a small SQLite file, shared by processes on one host.

Every worker of `[server] workers = N` and the `python-est lockouts` command open the same file,
so a lockout counts across workers, survives a reload and can be listed and lifted by an
operator. Times are wall-clock seconds (`time.time()`): monotonic clocks are not comparable
between processes. The file holds user names and addresses, no secrets; it is created 0600.
A good mark is a row of `locks` whose key starts with "good:" (the PostgreSQL store shares
this layout, so one set of queries fits both).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from python_est.errors import Unavailable

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS failures (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS failures_key ON failures (key, at)",
    "CREATE TABLE IF NOT EXISTS locks (key TEXT PRIMARY KEY, until REAL NOT NULL)",
)
_CLEANUP_EVERY = 256


class SqliteCounters:
    """A `CounterStore` in the SQLite file `path` (created if missing). Thread-safe.

    Raises:
        OSError, sqlite3.Error: the file cannot be created or opened.
    """

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self._path = Path(path)
        os.close(os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600))
        self._clock = clock
        self._lock = threading.Lock()
        self._calls = itertools.count(1)
        # Autocommit mode: every method opens its own transaction (BEGIN IMMEDIATE for writes,
        # so concurrent failures of one key are counted one after the other across processes).
        self._db = sqlite3.connect(
            self._path, timeout=10, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # Counters are not precious: a power cut may lose the last few, never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        for statement in _SCHEMA:
            self._db.execute(statement)

    @property
    def path(self) -> Path:
        return self._path

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def status(self, keys: Sequence[str], good: str | None) -> tuple[dict[str, float], bool]:
        wanted = [*keys, *([good] if good is not None else [])]
        marks = ",".join("?" * len(wanted))
        with self._lock, _unavailable():
            now = self._clock()
            rows = self._db.execute(
                f"SELECT key, until FROM locks WHERE key IN ({marks}) AND until > ?",
                (*wanted, now),
            ).fetchall()
        found = {str(key): float(until) - now for key, until in rows}
        known_good = good is not None and found.pop(good, None) is not None
        return found, known_good

    def fail(self, limits: Sequence[tuple[str, int]], window: float, lockout: float) -> None:
        cleanup = next(self._calls) % _CLEANUP_EVERY == 0

        def work(db: sqlite3.Connection, now: float) -> None:
            for key, limit in sorted(limits):
                _count(db, now, key, limit, window, lockout)
            if cleanup:
                db.execute("DELETE FROM failures WHERE at <= ?", (now - window,))
                db.execute("DELETE FROM locks WHERE until <= ?", (now,))

        self._write(work)

    def succeed(self, forget: str, good: str, good_for: float) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            db.execute("DELETE FROM failures WHERE key = ?", (forget,))
            db.execute(
                "INSERT INTO locks (key, until) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET until = excluded.until",
                (good, now + good_for),
            )

        self._write(work)

    def locks(self) -> list[tuple[str, float]]:
        with self._lock, _unavailable():
            now = self._clock()
            rows = self._db.execute(
                "SELECT key, until FROM locks WHERE until > ? AND key NOT LIKE 'good:%'", (now,)
            ).fetchall()
        return [(str(key), float(until) - now) for key, until in rows]

    def clear(self, keys: Sequence[str]) -> None:
        def work(db: sqlite3.Connection, now: float) -> None:
            for key in keys:
                db.execute("DELETE FROM locks WHERE key = ?", (key,))
                db.execute("DELETE FROM failures WHERE key = ?", (key,))

        self._write(work)

    def _write(self, work: Callable[[sqlite3.Connection, float], None]) -> None:
        with self._lock, _unavailable():
            self._db.execute("BEGIN IMMEDIATE")
            done = False
            try:
                work(self._db, self._clock())
                done = True
            finally:
                self._db.execute("COMMIT" if done else "ROLLBACK")


@contextlib.contextmanager
def _unavailable() -> Iterator[None]:
    # A locked (busy beyond the timeout), full or unreadable file: the login is refused with a
    # 503 rather than let through uncounted.
    try:
        yield
    except sqlite3.Error:
        raise Unavailable("the login failure counters are unavailable", retry_after=30) from None


def _count(
    db: sqlite3.Connection, now: float, key: str, limit: int, window: float, lockout: float
) -> None:
    if db.execute("SELECT 1 FROM locks WHERE key = ? AND until > ?", (key, now)).fetchone():
        return
    db.execute("DELETE FROM failures WHERE key = ? AND at <= ?", (key, now - window))
    db.execute("INSERT INTO failures (key, at) VALUES (?, ?)", (key, now))
    (count,) = db.execute("SELECT count(*) FROM failures WHERE key = ?", (key,)).fetchone()
    if count >= limit:
        db.execute("DELETE FROM failures WHERE key = ?", (key,))
        db.execute(
            "INSERT INTO locks (key, until) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET until = excluded.until",
            (key, now + lockout),
        )
