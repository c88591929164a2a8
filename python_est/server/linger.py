"""Closed connections drain here, off the workers.

After the response the server sends FIN, then must read what the client still sends until the
client's own FIN: closing a socket with unread input sends a reset, which can destroy the
response before the client has read it (libest sends a stray CRLF after its request). That
drain lasts until the client closes, up to `LINGER` seconds. Done by the worker, it held a
worker per finished connection for as long as the client took to close (6-8% of a
connection's wall time in the profile of docs/performance.md), and a client that never closes
held one for a second per cheap request. One `Lingerer` thread per server drains every closing
connection at once with epoll, and the worker is free as soon as its response is out.

At most `limit` sockets linger; past that the one that has lingered longest is closed at once
(it has had the most time to read its response), so a flood of clients that never close costs
a bounded number of descriptors.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

log = logging.getLogger("python_est.server")

LINGER = 1.0  # seconds a closed connection is drained at most, waiting for the client's FIN
LIMIT = 256  # sockets lingering at once, at most
_READ = 4096


class Lingerer:
    """Drains and closes sockets handed over with `close`, in one thread of its own.

    Args:
        linger: seconds each socket is drained at most (default `LINGER`).
        limit: sockets lingering at once, at most.
        clock: monotonic time source.
    """

    def __init__(
        self,
        linger: float | None = None,
        limit: int = LIMIT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.linger = LINGER if linger is None else linger
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        # fd -> (socket, when to give up on it); insertion order is the order of arrival.
        self._lingering: dict[int, tuple[socket.socket, float]] = {}
        self._poller = select.epoll()
        self._wake_recv, self._wake_send = socket.socketpair()
        self._wake_recv.setblocking(False)
        self._poller.register(self._wake_recv.fileno(), select.EPOLLIN)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="est-linger", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def __len__(self) -> int:
        with self._lock:
            return len(self._lingering)

    def close(self, sock: socket.socket) -> None:
        """Send FIN (if not sent yet), then drain `sock` until the client's FIN or the linger
        time, and close it; returns at once."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            fd = sock.fileno()
        except OSError:
            _close(sock)  # not connected any more: nothing to drain
            return
        now_closed: socket.socket | None = sock
        with self._lock:
            if not self._stopping and self._thread.is_alive():
                now_closed = None
                if len(self._lingering) >= self.limit:
                    now_closed = self._forget(next(iter(self._lingering)))
                self._lingering[fd] = (sock, self._clock() + self.linger)
                # Registered while the thread may sit in epoll_wait: epoll sees it at once.
                self._poller.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
        if now_closed is not None:
            _close(now_closed)

    def stop(self, timeout: float | None = None) -> None:
        """Let the sockets lingering now finish (at most their linger time), then end the
        thread and close the rest; new ones are closed at once from now on."""
        with self._lock:
            self._stopping = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(self.linger + 1.0 if timeout is None else timeout)
        else:  # never started: nothing else closes these
            self._poller.close()
            self._wake_recv.close()
            self._wake_send.close()
        with self._lock:
            left = [self._forget(fd) for fd in list(self._lingering)]
        for sock in left:
            _close(sock)

    def _wake(self) -> None:
        try:
            self._wake_send.send(b"\0")
        except OSError:
            pass  # already woken, or stopped

    def _forget(self, fd: int) -> socket.socket:
        """Stop watching `fd` (hold `_lock`); the caller closes the socket returned."""
        sock, _ = self._lingering.pop(fd)
        try:
            self._poller.unregister(fd)
        except OSError:
            pass  # closed under us; epoll dropped it already
        return sock

    def _run(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._stopping and not self._lingering:
                        return
                    first = next(iter(self._lingering.values()), None)
                # New sockets give up later than those already here, so the first one's
                # deadline is the next; with none, one linger time is soon enough.
                timeout = self.linger if first is None else max(0.0, first[1] - self._clock())
                for fd, _ in self._poller.poll(timeout):
                    if fd == self._wake_recv.fileno():
                        self._drain_wake()
                    else:
                        self._read(fd)
                self._expire()
        except Exception:  # a bug: the sockets still close when the server stops
            log.exception("the linger thread failed")
        finally:
            self._poller.close()
            self._wake_recv.close()
            self._wake_send.close()

    def _drain_wake(self) -> None:
        try:
            while self._wake_recv.recv(64):
                pass
        except OSError:
            pass  # empty

    def _read(self, fd: int) -> None:
        with self._lock:
            entry = self._lingering.get(fd)
        if entry is None:
            return
        try:
            done = not entry[0].recv(_READ)  # the client's FIN: it has read all it wanted
        except (BlockingIOError, InterruptedError):
            done = False
        except OSError:
            done = True  # reset or gone
        if done:
            self._close(fd, entry[0])

    def _expire(self) -> None:
        now = self._clock()
        closing = []
        with self._lock:
            for fd, (_, until) in list(self._lingering.items()):
                if until > now:
                    break  # in order of arrival, so of deadline: the rest are later
                closing.append(self._forget(fd))
        for sock in closing:
            _close(sock)

    def _close(self, fd: int, sock: socket.socket) -> None:
        with self._lock:
            if self._lingering.get(fd, (None,))[0] is not sock:
                return  # already closed (expired, or pushed out by the limit)
            self._forget(fd)
        _close(sock)


def _close(sock: socket.socket) -> None:
    # The plain socket close: `ClientSocket.close` would hand the socket back to us.
    socket.socket.close(sock)
