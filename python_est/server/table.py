"""Who holds the workers: per-address shares, eviction of idle connections, refusal warnings.

Three defences keep a few addresses from holding every worker with slow or idle connections
(slowloris spread over several addresses):

- a per-address share (`max_connections_per_address`), checked at accept, so that holding the
  whole pool takes many addresses;
- absolute deadlines per phase (handshake, request head, whole request; in `loop`), so that a
  held worker comes back on time;
- eviction: when every worker is busy and new connections wait in the listen queue, the
  server cuts, as many as are queued, connections whose worker is blocked waiting for its
  client right now (in the handshake or the request, not yet served) and has waited for it at
  least `EVICT_MIN_WAIT` in total (`clientwait`), taken from the address that holds the most
  connections, the longest waited first. The queued connections then get the workers, and an
  evicted client's reconnection queues behind them. A connection's age is not the test: on a
  busy server that is the server's own time, and a client whose request has arrived is never
  cut (`serving`).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from python_est.ratelimit import address_key
from python_est.server.clientwait import ClientWait

log = logging.getLogger("python_est.server")

# A connection is evicted only after its worker has waited this long for the client in all. A
# healthy client keeps the server waiting about three round trips (ClientHello, key exchange,
# request) plus its own computing: well under a second on a LAN, over one on a poor mobile
# link. Under a slow-connection flood it also sets how fast workers come back (all that
# qualify are cut, as many as are queued), so it is not larger either.
EVICT_MIN_WAIT = 2.0
# At most one warning per this many seconds for connections refused by the per-address share.
REFUSAL_WARNING_INTERVAL = 10.0

Clock = Callable[[], float]


@dataclass(eq=False)
class Held:
    """One accepted connection, from accept until its thread has closed it."""

    sock: socket.socket
    address: str
    key: str | None  # the per-address key it counts against; None while it counts against none
    wait: ClientWait  # how long the worker has waited for this client
    waiting: bool = True  # not served yet: may be evicted while blocked on its client
    evicted: bool = field(default=False)


class RefusalLog:
    """Warns about connections refused by the per-address share, at most once per interval.

    Each warning names the address refused at that moment and how many more refusals (and from
    how many addresses) the previous interval held back, so a flood costs one line per interval
    and still shows who and how much.
    """

    def __init__(self, interval: float = REFUSAL_WARNING_INTERVAL, clock: Clock = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._held_back = 0
        self._addresses: set[str] = set()
        self._lock = threading.Lock()

    def refused(self, address: str, cap: int) -> None:
        with self._lock:
            now = self._clock()
            if now < self._next:
                self._held_back += 1
                self._addresses.add(address_key(address))
                return
            held_back, addresses = self._held_back, len(self._addresses)
            self._next, self._held_back, self._addresses = now + self.interval, 0, set()
        more = ""
        if held_back:
            more = f" ({held_back} more from {addresses} address(es) since the last warning)"
        log.warning(
            "%s - refused: already %d connections from this address "
            "([server] max_connections_per_address)%s",
            address,
            cap,
            more,
        )


class ConnectionTable:
    """The connections being served, counted per client address.

    Args:
        per_address: connections one address (an IPv6 /64) may hold at once; 0: no cap.
        clock: monotonic time source (tests pass their own).
    """

    def __init__(self, per_address: int, *, clock: Clock = time.monotonic) -> None:
        self.per_address = per_address
        self._clock = clock
        self._held: set[Held] = set()
        self._counts: Counter[str] = Counter()
        self._changed = threading.Condition()
        self.refusals = RefusalLog(clock=clock)

    def __len__(self) -> int:
        with self._changed:
            return len(self._held)

    def held_by(self, address: str) -> int:
        """How many connections count against `address` (its IPv6 /64) now."""
        with self._changed:
            return self._counts[address_key(address)]

    def admit(
        self,
        sock: socket.socket,
        address: str,
        *,
        counted: bool = True,
        wait: ClientWait | None = None,
    ) -> Held | None:
        """Hold a new connection; None (and a rate-limited warning) if its address is full.

        `wait` times the worker's reads from this client (`ClientSocket`); without one the
        connection is never blocked on its client as far as eviction can tell.
        """
        with self._changed:
            key = self._claim(address) if counted else None
            if counted and key is None:
                refused = True
            else:
                refused = False
                if wait is None:
                    wait = ClientWait(self._clock)
                held = Held(sock, address, key, wait)
                self._held.add(held)
        if refused:
            self.refusals.refused(address, self.per_address)
            return None
        return held

    def count_as(self, held: Held, address: str) -> bool:
        """Count an uncounted connection against `address` (a proxied client, once named)."""
        with self._changed:
            held.key = self._claim(address)
            refused = held.key is None
        if refused:
            self.refusals.refused(address, self.per_address)
        return not refused

    def serving(self, held: Held) -> bool:
        """The request is complete: the server works for this client now, never evict it.

        False if it was evicted first: its socket is cut, so nothing may be done for it (a
        certificate issued now would reach nobody).
        """
        with self._changed:
            held.waiting = False
            return not held.evicted

    def finished(self, held: Held) -> None:
        """The exchange is over (only the close remains): stop counting it against its
        address, so a client that reconnects as soon as it has read the server's close is
        never refused for its own previous connection."""
        with self._changed:
            held.waiting = False
            self._uncount(held)

    def release(self, held: Held) -> None:
        with self._changed:
            self._held.discard(held)
            self._uncount(held)
            self._changed.notify_all()

    def evict_idle(self, min_wait: float = EVICT_MIN_WAIT, limit: int = 1) -> list[Held]:
        """Cut up to `limit` connections blocked on their clients that have waited `min_wait`.

        Victims come from the address holding the most connections, the longest waited
        first, so a client with one connection is evicted only when every address holds just
        one. Returns the victims.
        """
        with self._changed:
            waited = {
                h: h.wait.seconds()
                for h in self._held
                if h.waiting and not h.evicted and h.wait.blocked
            }
            candidates = {h for h, seconds in waited.items() if seconds >= min_wait}
            # Connections already cut are on their way out: they no longer weigh on an address.
            counts = Counter(h.key for h in self._held if h.key and not h.evicted)
            victims: list[Held] = []
            while candidates and len(victims) < limit:
                victim = max(candidates, key=lambda h: (counts[h.key] if h.key else 0, waited[h]))
                candidates.discard(victim)
                if victim.key:
                    counts[victim.key] -= 1
                victim.evicted = True
                victims.append(victim)
        for victim in victims:
            _cut(victim.sock)
        return victims

    def wait_empty(self, timeout: float) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: not self._held, timeout=timeout)

    def cut_all(self) -> int:
        """Shut every held socket down, so that its thread sees EOF or EPIPE; how many."""
        with self._changed:
            held = list(self._held)
        for item in held:
            _cut(item.sock)
        return len(held)

    def _uncount(self, held: Held) -> None:
        if held.key is not None:
            self._counts[held.key] -= 1
            if self._counts[held.key] <= 0:
                del self._counts[held.key]
            held.key = None

    def _claim(self, address: str) -> str | None:
        """The key counted for `address`, or None when it is at its share (hold `_changed`)."""
        key = address_key(address)
        if self.per_address > 0 and self._counts[key] >= self.per_address:
            return None
        self._counts[key] += 1
        return key


def _cut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its thread
