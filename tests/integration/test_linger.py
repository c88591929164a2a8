"""`server.linger`: closing connections drain off the workers.

Socket pairs stand in for accepted connections; `theirs` is the client's end.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from python_est.server.linger import Lingerer
from tests.conftest import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def lingerer() -> Iterator[Lingerer]:
    made = Lingerer(linger=30.0, limit=3)
    made.start()
    yield made
    made.stop(timeout=5.0)


def connection() -> tuple[socket.socket, socket.socket]:
    ours, theirs = socket.socketpair()
    theirs.settimeout(5)
    return ours, theirs


def test_the_response_survives_unread_client_bytes_and_the_socket_closes_on_the_clients_fin(
    lingerer: Lingerer,
) -> None:
    ours, theirs = connection()
    theirs.sendall(b"\r\n")  # libest's stray CRLF: unread when the server closes
    ours.sendall(b"the response")
    lingerer.close(ours)  # returns at once: the worker is free
    assert theirs.recv(100) == b"the response"
    assert theirs.recv(100) == b""  # FIN, not a reset
    assert len(lingerer) == 1  # draining until the client's own FIN
    theirs.close()
    wait_until(lambda: len(lingerer) == 0, "the client's FIN closes it")
    assert ours.fileno() == -1


def test_a_client_that_never_closes_is_dropped_after_the_linger_time() -> None:
    quick = Lingerer(linger=0.2, limit=8)
    quick.start()
    ours, theirs = connection()
    try:
        quick.close(ours)
        assert theirs.recv(10) == b""
        wait_until(lambda: len(quick) == 0, "the linger time ends it")
        assert ours.fileno() == -1
    finally:
        quick.stop(timeout=5.0)
        theirs.close()


def test_past_the_limit_the_longest_lingering_is_closed_at_once(lingerer: Lingerer) -> None:
    pairs = [connection() for _ in range(4)]
    try:
        for ours, _ in pairs:
            lingerer.close(ours)
        assert len(lingerer) == 3
        assert pairs[0][0].fileno() == -1  # the first is out
        assert all(ours.fileno() != -1 for ours, _ in pairs[1:])
    finally:
        for _, theirs in pairs:
            theirs.close()


def test_stop_closes_what_lingers_and_later_sockets_at_once() -> None:
    stopping = Lingerer(linger=30.0)
    stopping.start()
    first, first_client = connection()
    later, later_client = connection()
    try:
        stopping.close(first)
        stopping.stop(timeout=0.2)  # the client never closes: cut at the stop
        assert first.fileno() == -1 and len(stopping) == 0
        stopping.close(later)
        assert later.fileno() == -1
        assert later_client.recv(10) == b""
    finally:
        first_client.close()
        later_client.close()


def test_a_socket_already_shut_down_is_closed_without_lingering(lingerer: Lingerer) -> None:
    ours, theirs = connection()
    theirs.close()
    ours.shutdown(socket.SHUT_RDWR)
    lingerer.close(ours)
    wait_until(lambda: len(lingerer) == 0, "it is closed")
    assert ours.fileno() == -1
