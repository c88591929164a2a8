"""Pre-fork workers for `[server] workers = N` (N > 1): one main process supervising N workers.

The main process binds the port and forks the workers; each opens its own state (an SQLite
connection must not cross a fork) and runs an `EstServer` on the inherited listening socket. All
of them wait in accept() on that one socket and the kernel gives each connection to one of them
(see docs/architecture.md for why this and not SO_REUSEPORT). The main process serves nothing: it
restarts a worker that dies (after 0.5 s, doubling while it keeps dying within 10 s of its start;
after five such deaths in a row it stops everything and exits 1, so systemd's Restart= takes
over), passes SIGHUP on once it has checked that the new configuration loads, and on SIGTERM or
SIGINT passes SIGTERM on and waits for the workers to drain. It alone talks to systemd.

The ledger, the pending-request queue and the user store are files that every worker reads and
writes: SQLite in WAL mode with a busy timeout serialises the writers, the user store is replaced
atomically and re-read when it changes. What stays per process is harmless: the TLS session-ID
cache (session tickets, whose keys all workers share, resume anywhere) and the failed-login
counters (a locked-out client may get a few more tries, at most one window per worker).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from python_est.cli.supervisor import sdnotify
from python_est.cli.supervisor.daemon import SIGNALS
from python_est.cli.supervisor.signals import RELOAD, STOP, SignalInbox, blocked

log = logging.getLogger("python_est")

SUPERVISOR_SIGNALS = SIGNALS | {signal.SIGCHLD}
RAPID = 10.0  # a worker that dies sooner than this after its start counts as failing
GIVE_UP = 5  # consecutive rapid deaths of one worker that stop the whole server
FIRST_DELAY = 0.5
MAX_DELAY = 30.0
_TICK = 1.0
_KILL_MARGIN = 5.0  # seconds past the grace period before workers still running get SIGKILL


@dataclass
class _Slot:
    index: int
    pid: int | None = None
    started: float = 0.0
    rapid: int = 0
    due: float | None = None


class Supervisor:
    """Forks and supervises the worker processes.

    Args:
        count: number of workers.
        start: runs in a new worker process with its index; returns its exit status.
        reload: on SIGHUP, checks (and adopts) the new configuration; True to pass it on.
        tick: called about once a second (the main process's housekeeping).
        grace: the current shutdown grace period in seconds.
    """

    def __init__(
        self,
        count: int,
        start: Callable[[int], int],
        *,
        reload: Callable[[], bool],
        tick: Callable[[], None],
        grace: Callable[[], float],
    ) -> None:
        self._slots = [_Slot(index) for index in range(1, count + 1)]
        self._start = start
        self._reload = reload
        self._tick = tick
        self._grace = grace
        self._failed = False
        self._inbox: SignalInbox | None = None

    def run(self) -> int:
        """Start the workers and supervise them until SIGTERM or SIGINT; returns the status.

        No other thread may be running: fork copies only the calling thread.
        """
        self._inbox = inbox = SignalInbox(SUPERVISOR_SIGNALS)
        try:
            for slot in self._slots:
                self._spawn(slot)
            sdnotify.ready(f"serving with {len(self._slots)} workers")
            while True:
                received = inbox.wait(self._timeout())
                self._reap()
                if self._failed:
                    break
                stop = next((s for s in received if s in STOP), None)
                if stop is not None:
                    log.info("received %s; stopping", signal.Signals(stop).name)
                    break
                if RELOAD in received:
                    self._on_reload()
                self._respawn_due()
                self._tick()
            self._stop(inbox)
        finally:
            inbox.close()
        return 1 if self._failed else 0

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers."""
        return [slot.pid for slot in self._slots if slot.pid is not None]

    def _timeout(self) -> float:
        now = time.monotonic()
        waits = [max(0.0, slot.due - now) for slot in self._slots if slot.due is not None]
        return min([_TICK, *waits])

    def _spawn(self, slot: _Slot) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Blocked across fork: a signal for the new worker must not reach our wakeup pipe, which
        # it shares until it has its own.
        with blocked(SUPERVISOR_SIGNALS):
            pid = os.fork()
            if pid == 0:
                self._child(slot.index)
        slot.pid, slot.started, slot.due = pid, time.monotonic(), None
        log.info("worker %d started (pid %d)", slot.index, pid)

    def _child(self, index: int) -> NoReturn:
        status = 1
        try:
            assert self._inbox is not None
            self._inbox.close(restore=False)  # the worker makes its own (signals still blocked)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            status = self._start(index)
        except Exception:
            log.exception("worker %d failed", index)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            # Never return into the main process's code (or run its atexit handlers).
            os._exit(status)

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = next((s for s in self._slots if s.pid == pid), None)
            if slot is not None:
                self._died(slot, status)

    def _died(self, slot: _Slot, status: int) -> None:
        pid, slot.pid = slot.pid, None
        now = time.monotonic()
        slot.rapid = slot.rapid + 1 if now - slot.started < RAPID else 0
        delay = min(MAX_DELAY, FIRST_DELAY * 2**slot.rapid)
        code = os.waitstatus_to_exitcode(status)
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with {code}"
        if slot.rapid >= GIVE_UP:
            log.error(
                "worker %d (pid %s) %s, %d times within %.0fs of starting; stopping the server",
                slot.index,
                pid,
                how,
                slot.rapid,
                RAPID,
            )
            self._failed = True
            return
        log.warning("worker %d (pid %s) %s; restarting it in %.1fs", slot.index, pid, how, delay)
        slot.due = now + delay

    def _respawn_due(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            if slot.pid is None and slot.due is not None and slot.due <= now:
                self._spawn(slot)

    def _on_reload(self) -> None:
        log.info("reloading the configuration")
        sdnotify.reloading()
        accepted = self._reload()
        if accepted:
            self._signal(signal.SIGHUP)
        workers = len(self._slots)
        sdnotify.ready(f"serving with {workers} workers" + ("" if accepted else "; reload refused"))

    def _signal(self, signum: signal.Signals) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass  # it died just now; _reap will see it

    def _stop(self, inbox: SignalInbox) -> None:
        sdnotify.stopping()
        self._signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace() + _KILL_MARGIN
        while self.pids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("workers %s did not stop in time; killing them", self.pids)
                self._signal(signal.SIGKILL)
                for pid in self.pids:
                    os.waitpid(pid, 0)
                break
            inbox.wait(min(remaining, _TICK))  # SIGCHLD wakes it
            self._reap_stopping()
        log.info("all workers stopped")

    def _reap_stopping(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid == 0:
                return
            for slot in self._slots:
                if slot.pid == pid:
                    slot.pid = None
                    code = os.waitstatus_to_exitcode(status)
                    if code != 0:
                        log.warning("worker %d (pid %d) ended with %d", slot.index, pid, code)
