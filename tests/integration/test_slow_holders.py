"""A few addresses cannot hold every worker (issue 13 item 8), over real TCP and TLS.

Several loopback source addresses (127.0.0.2, 127.0.0.3, ... are all local on Linux) hold slow
or idle connections: TCP only, half a ClientHello, or a finished handshake and no request. A
normal client from 127.0.0.1 must still be served, well before any deadline the holders are
subject to; and the request head has its own, shorter deadline.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import pytest

from est_harness import RunningServer, build_request, parse_reply, read_all
from python_est.server import linger
from tests.conftest import captured_records, wait_until

pytestmark = pytest.mark.integration

HOLDERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
DEADLINE = 30  # every deadline of the holders' connections, in seconds
SLOW = f"""\
[server]
max_connections = 16
max_connections_per_address = 4
handshake_timeout = {DEADLINE}
header_timeout = {DEADLINE}
request_timeout = {DEADLINE}
"""


def connect(server: RunningServer, source: str) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=DEADLINE, source_address=(source, 0)
    )


def client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def hold(server: RunningServer, source: str, kind: str, stack: ExitStack) -> None:
    """One slow connection of `kind` from `source`, kept open until `stack` closes."""
    sock = stack.enter_context(connect(server, source))
    if kind == "half-hello":
        sock.sendall(client_hello()[:40])
    elif kind == "no-request":
        tls = server.ssl_context().wrap_socket(sock, server_hostname="127.0.0.1")
        stack.enter_context(tls)


def get_cacerts(server: RunningServer, source: str = "127.0.0.1") -> int:
    with connect(server, source) as raw:
        raw.settimeout(DEADLINE - 5)  # a wait for the holders' deadlines fails the test
        with server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(build_request("GET", "/.well-known/est/cacerts", port=server.port))
            return parse_reply(read_all(tls)).status


@pytest.fixture
def holders() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def test_a_normal_client_is_served_while_four_addresses_hold_every_worker(
    start_est_server: Callable[[str], RunningServer], holders: ExitStack
) -> None:
    server = start_est_server(SLOW)
    kinds = ("tcp-only", "half-hello", "no-request", "tcp-only")
    for source in HOLDERS:
        for kind in kinds:
            hold(server, source, kind, holders)
    # 4 addresses x their share of 4: all 16 workers are held.
    wait_until(lambda: server.server.in_flight == 16, "the holders take every worker")
    with captured_records("python_est.server", logging.INFO) as records:
        started = time.monotonic()
        status = get_cacerts(server)
        waited = time.monotonic() - started
    assert status == 200
    # Served by evicting an idle holder, not by waiting for a holder's deadline to pass.
    assert waited < DEADLINE
    evicted = [r.getMessage() for r in records if "evicted" in r.getMessage()]
    assert evicted and evicted[0].startswith(HOLDERS), evicted


def test_clients_that_never_close_do_not_keep_the_workers(
    start_est_server: Callable[[str], RunningServer],
    holders: ExitStack,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # After its response the server drains the client's last bytes until the client closes,
    # up to the linger time (30 s here, to make it plain). Were that done by the workers, the
    # first two connections would take both workers until a deadline (10 s) and the third
    # would time out.
    monkeypatch.setattr(linger, "LINGER", 30.0)
    server = start_est_server("[server]\nmax_connections = 2\nmax_connections_per_address = 0\n")
    for _ in range(5):
        raw = holders.enter_context(connect(server, HOLDERS[0]))
        raw.settimeout(5)  # a worker held by an earlier drain fails this
        tls = holders.enter_context(
            server.ssl_context().wrap_socket(raw, server_hostname="127.0.0.1")
        )
        tls.sendall(build_request("GET", "/.well-known/est/cacerts", port=server.port))
        assert parse_reply(read_all(tls)).status == 200  # and the client keeps its socket
    wait_until(lambda: server.server.in_flight == 0, "no worker holds a finished connection")


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_the_share_per_address_refuses_with_one_warning(
    start_est_server: Callable[[str], RunningServer], holders: ExitStack
) -> None:
    server = start_est_server(SLOW)
    with captured_records("python_est.server", logging.WARNING) as records:
        socks = [holders.enter_context(connect(server, HOLDERS[0])) for _ in range(7)]
        # The share is 4: three are closed at once, before any TLS.
        wait_until(lambda: sum(closed_by_server(s) for s in socks) == 3, "3 are refused")
        assert server.server.connections_from(HOLDERS[0]) == 4
        refused = [r.getMessage() for r in records if "refused" in r.getMessage()]
    # Three refusals in a burst make one warning (rate-limited), naming the address.
    assert len(refused) == 1, refused
    assert refused[0].startswith(f"{HOLDERS[0]} - refused: already 4 connections")
    assert get_cacerts(server, HOLDERS[1]) == 200


@pytest.fixture
def head_server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return start_est_server(
        "[server]\nhandshake_timeout = 30\nheader_timeout = 1\nrequest_timeout = 30\n"
    )


def test_the_request_head_has_its_own_shorter_deadline(head_server: RunningServer) -> None:
    with captured_records("python_est.server", logging.INFO) as records:
        with connect(head_server, "127.0.0.2") as raw:
            ctx = head_server.ssl_context()
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /.well-known/est/cacerts HTTP/1.1\r\n")  # and no more
                started = time.monotonic()
                assert read_all(tls) == b""  # closed without a response
                held = time.monotonic() - started
        wait_until(lambda: any("head deadline" in r.getMessage() for r in records), "logged")
    assert held < 30  # cut at header_timeout, long before request_timeout
    line = next(r.getMessage() for r in records if "head deadline" in r.getMessage())
    assert line.startswith("127.0.0.2 ") and "request head deadline passed" in line


def test_a_body_may_take_longer_than_the_header_deadline(head_server: RunningServer) -> None:
    body = b"x" * 10
    with connect(head_server, "127.0.0.2") as raw:
        ctx = head_server.ssl_context()
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            head = build_request(
                "POST", "/.well-known/est/simpleenroll", body, port=head_server.port
            )
            tls.sendall(head[: -len(body)])  # the whole head, no body yet
            time.sleep(1.5)  # past header_timeout (1 s): only request_timeout applies now
            tls.sendall(body)
            reply = parse_reply(read_all(tls))
    # The request arrived whole: answered (not authenticated), not cut by the head deadline.
    assert reply.status == 401
