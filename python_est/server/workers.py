"""Connection workers that accept for themselves (leader/followers).

One idle worker at a time, the leader, holds the accept lock and waits for a connection; once
it has one it passes the lock on (to the next idle worker, a follower) and serves the connection
itself, then queues for the lock again. A connection thus goes from the kernel to the thread
that serves it with no hand-off between threads. The design it replaces, an accept thread
handing each connection to a pool thread through a queue, put two thread wake-ups and GIL
transfers on every connection's path; on a loaded machine each wake-up also waits for a CPU
(docs/performance.md, issue 20). Workers are started only when the last idle one takes a
connection, up to the limit, so the count follows the concurrency actually seen.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger("python_est.server")

T = TypeVar("T")
_BACKOFF = 0.5  # seconds a worker pauses after an unexpected error in accept


class Workers(Generic[T]):
    """At most `limit` threads, each running: take the lock, `accept()`, release, `serve(it)`.

    Args:
        limit: the most threads (connections served at once).
        accept: called by the leader with the accept lock held; returns a connection, or None
            (nothing accepted: the caller checks `stop` and retries).
        serve: called with what `accept` returned, without the lock.
        stop: once set, workers stop taking connections and end (those serving finish first).
        name: thread name prefix.

    An exception from `accept` or `serve` is a bug: it is logged and the worker carries on, so
    that no error can leave the server without a thread that accepts.
    """

    def __init__(
        self,
        limit: int,
        accept: Callable[[], T | None],
        serve: Callable[[T], None],
        stop: threading.Event,
        *,
        name: str = "est-conn",
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.accept_lock = threading.Lock()  # held by the leader while it waits in accept
        self._accept = accept
        self._serve = serve
        self._stop = stop
        self._name = name
        self._count_lock = threading.Lock()
        self._threads = 0  # running
        self._idle = 0  # of which not serving (the leader and its followers)
        self._started = 0

    @property
    def full(self) -> bool:
        """Every worker that may exist is serving: nobody accepts until one is done."""
        with self._count_lock:
            return self._idle == 0 and self._threads >= self.limit

    @property
    def threads(self) -> int:
        with self._count_lock:
            return self._threads

    def start(self) -> None:
        """Start the first worker (more follow as connections keep every one busy)."""
        self._spawn()

    def _spawn(self) -> None:
        with self._count_lock:
            self._threads += 1
            self._idle += 1
            self._started += 1
            name = f"{self._name}-{self._started}"
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            while True:
                try:
                    with self.accept_lock:
                        if self._stop.is_set():
                            return
                        taken = self._accept()
                except Exception:
                    log.exception("accepting a connection failed")
                    self._stop.wait(_BACKOFF)  # not a busy loop if it keeps failing
                    continue
                if taken is not None:
                    self._busy(taken)
        finally:
            with self._count_lock:
                self._threads -= 1
                self._idle -= 1

    def _busy(self, taken: T) -> None:
        with self._count_lock:
            self._idle -= 1
            # The last idle worker took this connection: start one to accept the next.
            spawn = self._idle == 0 and self._threads < self.limit
        if spawn:
            self._spawn()
        try:
            self._serve(taken)
        except Exception:
            log.exception("serving a connection failed")
        finally:
            with self._count_lock:
                self._idle += 1
