"""`server.table`: per-address shares, which idle connection is evicted, refusal warnings.

Socket pairs stand in for accepted connections; an eviction is observed from the other end,
which sees the connection shut down, as a real client would.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest

from python_est.server.table import ConnectionTable, RefusalLog
from tests.conftest import captured_records

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


def test_eviction_takes_the_biggest_holder_oldest_first_and_never_one_being_served(
    pairs: Pairs,
) -> None:
    clock = Clock()
    table = ConnectionTable(0, clock=clock)
    lone_ours, lone = pair(pairs)
    table.admit(lone_ours, "192.0.2.9")  # the oldest, but its address holds one
    clock.now += 1
    crowd = []
    for _ in range(3):
        ours, theirs = pair(pairs)
        entry = table.admit(ours, "198.51.100.7")
        assert entry is not None
        crowd.append((entry, theirs))
        clock.now += 1
    table.serving(crowd[0][0])  # its request is complete: the server works for it
    assert table.evict_idle(min_age=5.0) is None  # nobody has waited that long yet
    victim = table.evict_idle(min_age=1.0)
    assert victim is crowd[1][0]  # the crowd's oldest that still waits for its client
    assert victim.evicted and cut(crowd[1][1])
    assert not cut(crowd[0][1]) and not cut(crowd[2][1]) and not cut(lone)
    assert table.evict_idle(min_age=1.0) is crowd[2][0]  # not the same one twice
    assert table.evict_idle(min_age=1.0) is not None and cut(lone)  # then the lone one
    assert table.evict_idle(min_age=1.0) is None  # the one being served stays


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
    assert table.evict_idle(min_age=0.0) is None  # not waiting for its client either
    second = table.admit(pair(pairs)[0], "192.0.2.1")
    assert second is not None
    table.release(first)  # counted once only
    assert table.held_by("192.0.2.1") == 1 and len(table) == 1
