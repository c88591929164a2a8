"""Group commit: concurrent `record` calls share one ledger transaction (issue 20).

Each `record` still returns only once its own entry is durable (DESIGN.md decision 8); what
changes is how many entries one commit carries. While one thread commits, the entries other
threads submit queue up, and the next commit takes every one of them (up to `limit`). A durable
commit costs about one fsync (SQLite, synchronous=FULL) or one WAL flush (PostgreSQL) whatever
it carries, so N concurrent writers share one instead of queueing for N.

There is no background thread: whoever submits while nobody commits becomes the committer for
everything queued (leader and followers). So there is nothing to start, stop or fork around,
and a lone writer commits at once, exactly as without grouping: nothing waits for company.

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
    __slots__ = ("done", "entry", "error")

    def __init__(self, entry: E) -> None:
        self.entry = entry
        self.done = False
        self.error: BaseException | None = None


class GroupCommit(Generic[E]):
    """Commits submitted entries in shared transactions through `commit`.

    Args:
        commit: writes a batch in one transaction and commits it durably; returns one outcome
            per entry, in order (see the module docstring).
        limit: most entries per transaction; 1 commits every entry alone (no grouping).

    Attributes:
        commits: how many transactions `commit` was called for (for measurements).
    """

    def __init__(self, commit: CommitBatch[E], *, limit: int = DEFAULT_LIMIT) -> None:
        if limit < 1:
            raise ValueError("a transaction carries at least one entry")
        self._commit = commit
        self._limit = limit
        self._cond = threading.Condition()
        self._queue: list[_Slot[E]] = []
        self._leading = False
        self.commits = 0

    def submit(self, entry: E) -> None:
        """Return once `entry` is committed; raise what its commit raised for it."""
        slot = _Slot(entry)
        with self._cond:
            self._queue.append(slot)
        while True:
            with self._cond:
                while self._leading and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                # Nobody commits: this thread commits the oldest entries, its own among them
                # unless more than `limit` were queued before it (then it loops).
                self._leading = True
                batch = self._queue[: self._limit]
                del self._queue[: self._limit]
            outcomes = self._run(batch)
            with self._cond:
                for each, outcome in zip(batch, outcomes, strict=True):
                    each.error = outcome
                    each.done = True
                self._leading = False
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
