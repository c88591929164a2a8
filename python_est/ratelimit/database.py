"""`DatabaseCounters`: the password-failure counters, shared by every instance of a fleet.

A counter store for `python_est.ratelimit.LoginLimiter` in the `auth_failures` and
`auth_lockouts` tables, so a guesser spreading attempts over the instances behind a load balancer
is counted once, and `python-est lockouts` sees and lifts every instance's locks. A good mark (a
recent successful login of a user from an address) is an `auth_lockouts` row whose key starts
with "good:", as in the SQLite store. Times come from the database clock, so instances whose
clocks differ still agree.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from python_est.pgsql.connection import Cursor, Database, scalar

# Advisory-lock class for per-key counting (the second argument is the key's hash): concurrent
# failures of one key are counted one after the other, so exactly the Nth one locks it.
_LOCK_CLASS = 0x6573
_CLEANUP_EVERY = 256


class DatabaseCounters:
    """A `CounterStore` in the database (schema from `python-est db upgrade`). Thread-safe.

    Methods raise `Unavailable` (503) when the database cannot be reached.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._calls = itertools.count(1)

    def status(self, keys: Sequence[str], good: str | None) -> tuple[dict[str, float], bool]:
        wanted = sorted({*keys, *([good] if good is not None else [])})
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT key, extract(epoch FROM locked_until - clock_timestamp()) AS remaining"
                " FROM auth_lockouts WHERE key = ANY(%s) AND locked_until > clock_timestamp()",
                (wanted,),
            ).fetchall()
        )
        found = {str(row["key"]): float(row["remaining"]) for row in rows}
        known_good = good is not None and found.pop(good, None) is not None
        return found, known_good

    def fail(self, limits: Sequence[tuple[str, int]], window: float, lockout: float) -> None:
        ordered = sorted(limits)  # one lock order for every caller: no deadlocks
        cleanup = next(self._calls) % _CLEANUP_EVERY == 0

        def work(cursor: Cursor) -> None:
            for key, limit in ordered:
                _count(cursor, key, limit, float(window), float(lockout))
            if cleanup:
                cursor.execute(
                    "DELETE FROM auth_failures"
                    " WHERE at <= clock_timestamp() - make_interval(secs => %s)",
                    (float(window),),
                )
                cursor.execute("DELETE FROM auth_lockouts WHERE locked_until <= clock_timestamp()")

        self._db.run(work)

    def succeed(self, forget: str, good: str, good_for: float) -> None:
        def work(cursor: Cursor) -> None:
            cursor.execute("DELETE FROM auth_failures WHERE key = %s", (forget,))
            _lock(cursor, good, float(good_for))

        self._db.run(work)

    def locks(self) -> list[tuple[str, float]]:
        rows = self._db.run(
            lambda cursor: cursor.execute(
                "SELECT key, extract(epoch FROM locked_until - clock_timestamp()) AS remaining"
                " FROM auth_lockouts"
                " WHERE locked_until > clock_timestamp() AND key NOT LIKE %s",
                ("good:%",),
            ).fetchall()
        )
        return [(str(row["key"]), float(row["remaining"])) for row in rows]

    def clear(self, keys: Sequence[str]) -> None:
        wanted = sorted(set(keys))

        def work(cursor: Cursor) -> None:
            cursor.execute("DELETE FROM auth_lockouts WHERE key = ANY(%s)", (wanted,))
            cursor.execute("DELETE FROM auth_failures WHERE key = ANY(%s)", (wanted,))

        if wanted:
            self._db.run(work)

    def close(self) -> None:
        """Nothing to release: the database belongs to the server's state."""


def _count(cursor: Cursor, key: str, limit: int, window: float, lockout: float) -> None:
    cursor.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_CLASS, key))
    locked = scalar(
        cursor,
        "SELECT 1 FROM auth_lockouts WHERE key = %s AND locked_until > clock_timestamp()",
        (key,),
    )
    if locked is not None:
        return
    cursor.execute(
        "DELETE FROM auth_failures"
        " WHERE key = %s AND at <= clock_timestamp() - make_interval(secs => %s)",
        (key, window),
    )
    cursor.execute("INSERT INTO auth_failures (key, at) VALUES (%s, clock_timestamp())", (key,))
    count = int(scalar(cursor, "SELECT count(*) FROM auth_failures WHERE key = %s", (key,)))
    if count >= limit:
        cursor.execute("DELETE FROM auth_failures WHERE key = %s", (key,))
        _lock(cursor, key, lockout)


def _lock(cursor: Cursor, key: str, seconds: float) -> None:
    cursor.execute(
        "INSERT INTO auth_lockouts (key, locked_until)"
        " VALUES (%s, clock_timestamp() + make_interval(secs => %s))"
        " ON CONFLICT (key) DO UPDATE SET locked_until = EXCLUDED.locked_until",
        (key, seconds),
    )
