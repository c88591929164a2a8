"""Signals as events for the main thread's loop (the self-pipe pattern).

The handlers do nothing in Python; `signal.set_wakeup_fd` makes the C-level handler write each
signal's number to a pipe, and `SignalInbox.wait` selects on that pipe with a timeout. No
handler runs in the middle of the accept loop or of a log call, and nothing waits in
`sigtimedwait`: CPython's version returns an uninitialised siginfo when a stop and continue
(SIGSTOP/SIGCONT, a debugger) interrupt it close to its timeout, which can replay an old signal.

Threads that serve connections are started with the signals blocked (`blocked`), so only the
main thread is ever interrupted: sockets and SQLite in the other threads never see EINTR.
"""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from types import FrameType

STOP = frozenset({signal.SIGTERM, signal.SIGINT})
RELOAD = signal.SIGHUP


def _noted(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the wakeup pipe already has the signal's number."""


class SignalInbox:
    """Catches `signals` for this process until `close()`; must be made in the main thread."""

    def __init__(self, signals: Iterable[int]) -> None:
        self._signals = frozenset(int(s) for s in signals)
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous_fd = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self._previous = {s: signal.signal(s, _noted) for s in self._signals}

    def wait(self, timeout: float) -> list[int]:
        """Signals received since the last call, waiting up to `timeout` s for the first."""
        ready, _, _ = select.select([self._read], [], [], max(0.0, timeout))
        if not ready:
            return []
        try:
            data = os.read(self._read, 1024)
        except BlockingIOError:
            return []
        return [number for number in data if number in self._signals]

    def close(self, *, restore: bool = True) -> None:
        """Stop catching. `restore=False` in a forked child: the saved state is the parent's."""
        signal.set_wakeup_fd(self._previous_fd if restore else -1)
        if restore:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler)
        os.close(self._read)
        os.close(self._write)


@contextmanager
def blocked(signals: Iterable[int]) -> Iterator[None]:
    """Block `signals` in this thread for the block; threads started inside inherit the mask."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def unblock(signals: Iterable[int]) -> None:
    """Unblock `signals` in this thread (a forked worker inherits them blocked)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
