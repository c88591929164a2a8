"""Group commit: concurrent `record` calls share one ledger transaction (issue 20).

Each `record` still returns only once its own entry is durable (DESIGN.md decision 8); what
changes is how many entries one commit carries. While one thread commits, the entries other
threads submit queue up, and the next commit takes every one of them (up to `limit`). A durable
commit costs about one fsync (SQLite, synchronous=FULL) or one WAL flush (PostgreSQL) whatever
it carries, so N concurrent writers share one instead of queueing for N.

There is no background thread: whoever submits while a commit slot is free becomes the
committer for everything queued (leader and followers). So there is nothing to start, stop or
fork around, and a lone writer commits at once, exactly as without grouping: nothing waits for
company.

`in_flight` is how many transactions may be committing at once. SQLite has one writer, so one
(another would only wait for the write lock). A PostgreSQL server flushes one transaction's WAL
while it receives the next one's rows: with one group at a time, the next group could start only
once the previous COMMIT had returned, and 4 writers got fewer records/s than concurrent
transactions without grouping (docs/performance.md, "Group commit"). Two groups in flight
overlap those round trips and still share the flushes.

Failures. The backend's `commit(batch)` returns one outcome per entry: None (in the committed
transaction) or the exception that entry alone gets (a duplicate serial, left out of the
transaction while the others commit). An exception out of `commit` means the transaction did
not commit: every entry of that batch gets it, and entries queued behind it get their own
transaction.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

E = TypeVar("E")

# Most entries one transaction carries: enough for every worker thread at once, few enough that
# readers waiting for the ledger lock wait for one short transaction only.
DEFAULT_LIMIT = 64

CommitBatch = Callable[[Sequence[E]], Sequence[BaseException | None]]


class _Slot(Generic[E]):
    __slots__ = ("done", "entry", "error", "taken")

    def __init__(self, entry: E) -> None:
        self.entry = entry
        self.taken = False  # in a batch being committed
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[E]):
    """Commits submitted entries in shared transactions through `commit`.

    Args:
        commit: writes a batch in one transaction and commits it durably; returns one outcome
            per entry, in order (see the module docstring).
        limit: most entries per transaction; 1 commits every entry alone (no grouping).
        in_flight: most transactions committing at once (see the module docstring).

    Attributes:
        commits: how many transactions `commit` was called for (for measurements).
    """

    def __init__(
        self, commit: CommitBatch[E], *, limit: int = DEFAULT_LIMIT, in_flight: int = 1
    ) -> None:
        if limit < 1:
            raise ValueError("a transaction carries at least one entry")
        if in_flight < 1:
            raise ValueError("at least one transaction must be allowed to commit")
        self._commit = commit
        self._limit = limit
        self._in_flight = in_flight
        self._cond = threading.Condition()
        self._queue: list[_Slot[E]] = []
        self._leaders = 0  # transactions committing now
        self.commits = 0

    def submit(self, entry: E) -> None:
        """Return once `entry` is committed; raise what its commit raised for it."""
        slot = _Slot(entry)
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while not slot.done and (slot.taken or self._leaders >= self._in_flight):
                    self._cond.wait()
                if slot.done:
                    break
                # A commit slot is free and nobody has taken this entry: this thread commits
                # the oldest entries, its own among them unless more than `limit` were queued
                # before it (then it loops).
                self._leaders += 1
                batch = self._queue[: self._limit]
                del self._queue[: self._limit]
                for each in batch:
                    each.taken = True
            outcomes = self._run(batch)
            with self._cond:
                for each, outcome in zip(batch, outcomes, strict=True):
                    each.error = outcome
                    each.done = True
                self._leaders -= 1
                self.commits += 1
                self._cond.notify_all()
        if slot.error is not None:
            # A batch-wide failure is one exception object raised in every thread of the batch.
            raise slot.error

    def _run(self, batch: list[_Slot[E]]) -> Sequence[BaseException | None]:
        try:
            outcomes = self._commit([each.entry for each in batch])
        except BaseException as exc:  # every waiter of the batch raises it
            return [exc] * len(batch)
        if len(outcomes) != len(batch):
            error = RuntimeError("the ledger returned the wrong number of outcomes")
            return [error] * len(batch)
        return outcomes
