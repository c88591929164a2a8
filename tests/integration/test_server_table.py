"""`server.table`: per-address shares, which idle connection is evicted, refusal warnings.

Socket pairs stand in for accepted connections; an eviction is observed from the other end,
which sees the connection shut down, as a real client would.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator

import pytest

from python_est.server.clientwait import ClientSocket, ClientWait
from python_est.server.system import queued_connections
from python_est.server.table import EVICT_MIN_WAIT, ConnectionTable, RefusalLog
from tests.conftest import captured_records, wait_until

pytestmark = pytest.mark.integration

Pairs = list[tuple[socket.socket, socket.socket]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pairs() -> Iterator[Pairs]:
    made: Pairs = []
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


def pair(made: Pairs) -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    made.append((ours, theirs))
    return ours, theirs


def cut(theirs: socket.socket) -> bool:
    """Whether the server side of this pair has been shut down (the client reads EOF)."""
    theirs.setblocking(False)
    try:
        return theirs.recv(1) == b""
    except BlockingIOError:
        return False


def test_the_share_per_address_and_its_release(pairs: Pairs) -> None:
    table = ConnectionTable(2)
    held = [table.admit(pair(pairs)[0], "192.0.2.1") for _ in range(2)]
    assert all(h is not None for h in held)
    assert table.admit(pair(pairs)[0], "192.0.2.1") is None  # at its share
    assert table.admit(pair(pairs)[0], "192.0.2.2") is not None  # another address
    assert table.admit(pair(pairs)[0], "192.0.2.1", counted=False) is not None  # a proxy's
    assert table.held_by("192.0.2.1") == 2 and len(table) == 4
    first = held[0]
    assert first is not None
    table.release(first)
    assert table.held_by("192.0.2.1") == 1
    assert table.admit(pair(pairs)[0], "192.0.2.1:443") is not None  # the port is ignored


def test_eviction_takes_the_biggest_holder_longest_waited_first_and_never_one_being_served(
    pairs: Pairs,
) -> None:
    clock = Clock()
    table = ConnectionTable(0, clock=clock)
    lone_ours, lone = pair(pairs)
    lone_entry = table.admit(lone_ours, "192.0.2.9")  # waits longest, but its address holds one
    assert lone_entry is not None
    lone_entry.wait.begin()
    clock.now += 1
    crowd = []
    for _ in range(4):
        ours, theirs = pair(pairs)
        entry = table.admit(ours, "198.51.100.7")
        assert entry is not None
        entry.wait.begin()
        crowd.append((entry, theirs))
        clock.now += 1
    table.serving(crowd[0][0])  # its request is complete: the server works for it
    crowd[1][0].wait.end()  # its bytes arrived; the server works (or waits for the GIL)
    assert table.evict_idle(min_wait=6.0) == []  # nobody has waited that long yet
    [victim] = table.evict_idle(min_wait=1.0)
    assert victim is crowd[2][0]  # the crowd's longest waiting that is blocked on its client
    assert victim.evicted and cut(crowd[2][1])
    assert not any(cut(theirs) for _, theirs in (crowd[0], crowd[1], crowd[3])) and not cut(lone)
    assert table.evict_idle(min_wait=1.0) == [crowd[3][0]]  # not the same one twice
    assert table.evict_idle(min_wait=1.0) == [lone_entry] and cut(lone)  # then the lone one
    # The served one and the one the server is working on stay.
    assert table.evict_idle(min_wait=0.0) == []


def test_several_are_evicted_at_once_spreading_over_the_addresses(pairs: Pairs) -> None:
    # As many as are queued: one per check would leave a normal client queued behind a few
    # hundred reconnecting holders for many seconds.
    clock = Clock()
    table = ConnectionTable(0, clock=clock)
    entries = {}
    for name, address in [("b", "192.0.2.2"), ("a1", "192.0.2.1"), ("a2", "192.0.2.1")]:
        entries[name] = table.admit(pair(pairs)[0], address)
        entries[name].wait.begin()  # type: ignore[union-attr]
        clock.now += 1
    for name, address in [("c", "192.0.2.3"), ("a3", "192.0.2.1")]:
        entries[name] = table.admit(pair(pairs)[0], address)
        entries[name].wait.begin()  # type: ignore[union-attr]
        clock.now += 0.5
    clock.now += 2
    victims = table.evict_idle(min_wait=2.0, limit=3)
    # 192.0.2.1 holds three: its two longest waiting go first; then every address holds one,
    # and b has waited longest.
    assert victims == [entries["a1"], entries["a2"], entries["b"]]
    # Those cut no longer count against 192.0.2.1: c has waited longer than a3.
    assert table.evict_idle(min_wait=2.0, limit=10) == [entries["c"], entries["a3"]]


def test_a_wait_counts_in_total_so_trickling_does_not_reset_it(pairs: Pairs) -> None:
    clock = Clock()
    table = ConnectionTable(0, clock=clock)
    entry = table.admit(pair(pairs)[0], "192.0.2.1")
    assert entry is not None
    for _ in range(3):  # a byte every 0.4 s: never a whole second at once
        entry.wait.begin()
        clock.now += 0.4
        entry.wait.end()
        clock.now += 0.05  # the server handles the byte
    entry.wait.begin()
    assert entry.wait.seconds() == pytest.approx(1.2)
    assert table.evict_idle(min_wait=1.0) == [entry]


def test_a_request_completed_after_its_eviction_is_not_served(pairs: Pairs) -> None:
    # The cut and the end of the request can cross: the worker must then do nothing for it.
    clock = Clock()
    table = ConnectionTable(0, clock=clock)
    entry = table.admit(pair(pairs)[0], "192.0.2.1")
    assert entry is not None
    entry.wait.begin()
    clock.now += EVICT_MIN_WAIT
    assert table.evict_idle() == [entry]
    assert table.serving(entry) is False
    other = table.admit(pair(pairs)[0], "192.0.2.2")
    assert other is not None and table.serving(other) is True


def test_refusals_warn_once_per_interval_and_count_what_they_held_back() -> None:
    clock = Clock()
    refusals = RefusalLog(interval=10.0, clock=clock)
    with captured_records("python_est.server", logging.WARNING) as records:
        refusals.refused("192.0.2.1", 8)
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.2", "2001:db8::1"):
            clock.now += 1
            refusals.refused(address, 8)
        assert len(records) == 1
        clock.now += 10
        refusals.refused("203.0.113.5", 8)
    first, second = (r.getMessage() for r in records)
    assert first.startswith("192.0.2.1 - refused: already 8 connections from this address")
    assert "max_connections_per_address" in first and "more" not in first
    assert second.startswith("203.0.113.5 - refused")
    assert "(4 more from 3 address(es) since the last warning)" in second


def test_a_finished_exchange_stops_counting_before_its_close(pairs: Pairs) -> None:
    # A client that reconnects as soon as it reads our close must find its share free.
    table = ConnectionTable(1)
    first = table.admit(pair(pairs)[0], "192.0.2.1")
    assert first is not None
    assert table.admit(pair(pairs)[0], "192.0.2.1") is None
    table.finished(first)  # response sent; only the close remains
    assert table.held_by("192.0.2.1") == 0 and len(table) == 1
    first.wait.begin()
    assert table.evict_idle(min_wait=0.0) == []  # not waiting for its client either
    second = table.admit(pair(pairs)[0], "192.0.2.1")
    assert second is not None
    table.release(first)  # counted once only
    assert table.held_by("192.0.2.1") == 1 and len(table) == 1


def test_a_client_socket_times_the_reads_that_block_and_a_peek_does_not_end_the_wait(
    pairs: Pairs,
) -> None:
    ours, theirs = pair(pairs)
    clock = Clock()
    sock = ClientSocket.adopt(ours, ClientWait(clock))
    pairs.append((sock, sock))
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(sock.recv(10)))
    reader.start()
    wait_until(lambda: sock.wait.blocked)  # the worker blocks on its client
    clock.now += 3
    theirs.sendall(b"abc")
    reader.join(5)
    assert got == [b"abc"] and not sock.wait.blocked and sock.wait.seconds() == 3
    theirs.sendall(b"de")
    assert sock.recv(10, socket.MSG_PEEK) == b"de"  # only looked: still waiting for more
    assert blocked(sock)
    clock.now += 1
    assert sock.recv(10) == b"de" and not sock.wait.blocked and sock.wait.seconds() == 4


def blocked(sock: ClientSocket) -> bool:
    return sock.wait.blocked


def test_the_accept_queue_length_is_read_from_the_listener() -> None:
    with socket.create_server(("127.0.0.1", 0), backlog=16) as listener:
        assert queued_connections(listener) == 0
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        try:
            wait_until(lambda: queued_connections(listener) == 3)
            accepted, _ = listener.accept()
            accepted.close()
            assert queued_connections(listener) == 2
        finally:
            for client in clients:
                client.close()
