"""`DatabaseFailureLimiter`: the password-failure counters, shared by every instance.

The same rules as `python_est.ratelimit.FailureLimiter` (failures inside a sliding window; reaching
`max_failures` locks the key for `lockout_s`), kept in the `auth_failures` and `auth_lockouts`
tables, so a guesser spreading attempts over the instances behind a load balancer is counted once.
Times come from the database clock, so instances whose clocks differ still agree.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

from python_est.errors import TooManyRequests
from python_est.pgsql.connection import Cursor, Database, scalar

# Advisory-lock class for per-key counting (the second argument is the key's hash): concurrent
# failures of one key are counted one after the other, so exactly the Nth one locks it.
_LOCK_CLASS = 0x6573
_CLEANUP_EVERY = 256


class DatabaseFailureLimiter:
    """Counts authentication failures per key in the database and locks keys that fail too often.

    Thread-safe; one instance per server process, any number of processes.

    Args:
        db: the shared database (schema from `python-est db upgrade`).
        max_failures: failures inside `window_s` that lock a key.
        window_s: length of the sliding failure window, in seconds.
        lockout_s: how long a locked key stays locked, in seconds.

    Raises:
        ValueError: a limit is not positive.
    """

    def __init__(
        self, db: Database, max_failures: int = 5, window_s: float = 300, lockout_s: float = 300
    ) -> None:
        if max_failures < 1 or window_s <= 0 or lockout_s <= 0:
            raise ValueError("limits must be positive")
        self._db = db
        self._max_failures = max_failures
        self._window = float(window_s)
        self._lockout = float(lockout_s)
        self._calls = itertools.count(1)

    def check(self, keys: Iterable[str]) -> None:
        """Raise if any of `keys` is locked.

        Raises:
            TooManyRequests: a key is locked; `retry_after` is the whole seconds left.
            Unavailable: the database cannot be reached.
        """
        wanted = sorted(set(keys))
        if not wanted:
            return
        remaining = self._db.run(
            lambda cursor: scalar(
                cursor,
                "SELECT extract(epoch FROM max(locked_until) - clock_timestamp())"
                " FROM auth_lockouts WHERE key = ANY(%s) AND locked_until > clock_timestamp()",
                (wanted,),
            )
        )
        if remaining is not None and float(remaining) > 0:
            raise TooManyRequests(
                "too many failed authentication attempts; try again later",
                retry_after=max(1, math.ceil(float(remaining))),
            )

    def record_failure(self, keys: Iterable[str]) -> None:
        """Count one failure against each of `keys`, locking those that reach the limit."""
        wanted = sorted(set(keys))  # one lock order for every caller: no deadlocks
        cleanup = next(self._calls) % _CLEANUP_EVERY == 0

        def work(cursor: Cursor) -> None:
            for key in wanted:
                self._count(cursor, key)
            if cleanup:
                cursor.execute(
                    "DELETE FROM auth_failures"
                    " WHERE at <= clock_timestamp() - make_interval(secs => %s)",
                    (self._window,),
                )
                cursor.execute("DELETE FROM auth_lockouts WHERE locked_until <= clock_timestamp()")

        self._db.run(work)

    def record_success(self, keys: Iterable[str]) -> None:
        """Forget the failures of `keys` (pass the user key only: an address stays counted).

        A locked key stays locked: a success cannot happen while `check` refuses the attempt.
        """
        wanted = sorted(set(keys))
        if wanted:
            self._db.run(
                lambda cursor: cursor.execute(
                    "DELETE FROM auth_failures WHERE key = ANY(%s)", (wanted,)
                )
            )

    def _count(self, cursor: Cursor, key: str) -> None:
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
            (key, self._window),
        )
        cursor.execute("INSERT INTO auth_failures (key, at) VALUES (%s, clock_timestamp())", (key,))
        count = int(scalar(cursor, "SELECT count(*) FROM auth_failures WHERE key = %s", (key,)))
        if count >= self._max_failures:
            cursor.execute("DELETE FROM auth_failures WHERE key = %s", (key,))
            cursor.execute(
                "INSERT INTO auth_lockouts (key, locked_until)"
                " VALUES (%s, clock_timestamp() + make_interval(secs => %s))"
                " ON CONFLICT (key) DO UPDATE SET locked_until = EXCLUDED.locked_until",
                (key, self._lockout),
            )
