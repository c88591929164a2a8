"""How long a worker has waited for its client: what eviction judges a connection by.

A connection's age says little on a busy server: a healthy client's handshake takes seconds
when sixty handshakes share one GIL, and all that time is the server's, not the client's.
Evicting by age cut such clients after their request had arrived (a certificate issued that
nobody received). What marks a slow or idle holder is that the server sits in `recv` waiting
for its bytes; `ClientSocket` times exactly that, and eviction takes only a connection whose
worker is blocked on its client now and has waited for it long enough in total (so trickling
a byte at a time does not reset the count).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from python_est.server.linger import Lingerer


class ClientWait:
    """Seconds a worker has spent blocked reading from one client, in total.

    Written by the connection's own thread and read by the eviction check in another; a read
    may be a moment stale, which a threshold of seconds does not notice.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._total = 0.0
        self._since: float | None = None

    def begin(self) -> None:
        """The worker starts waiting for the client (a no-op while it already waits)."""
        if self._since is None:
            self._since = self._clock()

    def end(self) -> None:
        """The client's bytes arrived (or the read failed): the worker works again."""
        since, self._since = self._since, None
        if since is not None:
            self._total += self._clock() - since

    @property
    def blocked(self) -> bool:
        """The worker is waiting for this client now: cutting the socket frees it at once."""
        return self._since is not None

    def seconds(self) -> float:
        """Total seconds waited, the current wait included."""
        since = self._since
        return self._total + (0.0 if since is None else self._clock() - since)


class ClientSocket(socket.socket):
    """An accepted socket whose reads are timed into `wait`, and whose close lingers.

    A `MSG_PEEK` read only looks at what has arrived so far (the ClientHello and PROXY header
    checks peek, then pause, then peek again until enough is there), so it starts a wait but
    does not end it: the wait ends when the server takes bytes off the socket.

    With a `lingerer`, `close` sends FIN and hands the socket to it, which drains the client's
    last bytes and closes it (`server.linger`); the TLS layer's own drain is then skipped
    (`drains_itself`). Later calls to `close` do nothing; `close_at_once` closes without
    draining (a connection refused at accept).
    """

    wait: ClientWait
    lingerer: Lingerer | None = None
    _handed_over = False

    @property
    def drains_itself(self) -> bool:
        return self.lingerer is not None

    def close(self) -> None:
        lingerer = self.lingerer
        if lingerer is None:
            super().close()
        elif not self._handed_over:
            self._handed_over = True
            lingerer.close(self)

    def close_at_once(self) -> None:
        super().close()

    @classmethod
    def adopt(cls, sock: socket.socket, wait: ClientWait | None = None) -> ClientSocket:
        """Take over `sock`'s descriptor (`sock` is left detached, closing it does nothing)."""
        timeout = sock.gettimeout()
        adopted = cls(fileno=sock.detach())
        adopted.settimeout(timeout)
        adopted.wait = wait if wait is not None else ClientWait()
        return adopted

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self.wait.begin()
        try:
            return super().recv(bufsize, flags)
        finally:
            if not flags & socket.MSG_PEEK:
                self.wait.end()
