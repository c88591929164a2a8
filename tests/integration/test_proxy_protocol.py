"""PROXY protocol on a real server: the client a trusted proxy names is the connection's address.

The "proxy" here is a test socket bound to 127.0.0.2 (the only trusted address) that writes a
PROXY header and then runs TLS with Python's ssl module over the same socket; direct clients
connect from 127.0.0.1. Checked: v1 and v2 headers, a header and ClientHello arriving in one
segment and a header trickled in pieces; the connection log line, the failed-login lockout and
the per-address cap all key on the proxied client; an untrusted source is a direct client; a
trusted source without a valid header is closed and the server keeps serving.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable

import pytest

from est_harness import (
    Reply,
    RunningServer,
    basic,
    build_request,
    csr_body,
    make_csr,
    parse_reply,
    read_all,
)
from python_est.server.proxyproto import V2_SIGNATURE

pytestmark = pytest.mark.integration

PROXY = "127.0.0.2"
CLIENT_A, CLIENT_B = "203.0.113.7", "2001:db8::b"
USER, PASSWORD = "alice", "alice password 1"
CONFIG = f"""
[server]
proxy_protocol = yes
trusted_proxies = {PROXY}
handshake_timeout = 2
max_connections_per_address = 2
[auth]
max_failures = 3
failure_window = 60
lockout = 60
address_max_failures = 3
"""
CACERTS = "/.well-known/est/cacerts"
ENROLL = "/.well-known/est/simpleenroll"


def v1(client: str, port: int = 40000) -> bytes:
    family = "TCP6" if ":" in client else "TCP4"
    dest = "::1" if family == "TCP6" else "127.0.0.1"
    return f"PROXY {family} {client} {dest} {port} 8443\r\n".encode()


def v2(client: str | None, port: int = 40000) -> bytes:
    """A v2 PROXY header for `client` (None: LOCAL, as a health check sends) with one TLV."""
    if client is None:
        return V2_SIGNATURE + b"\x20\x00\x00\x00"
    ip = ipaddress.ip_address(client)
    dest = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    block = ip.packed + dest.packed + struct.pack("!HH", port, 8443) + b"\x04\x00\x02\0\0"
    family = 0x21 if ip.version == 6 else 0x11
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(block)) + block


def connect(server: RunningServer, source: str = PROXY) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), 10, source_address=(source, 0))


def request_over(raw: socket.socket, server: RunningServer, request: bytes) -> Reply:
    context = server.ssl_context()
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(request)
        return parse_reply(read_all(tls))


def proxied(server: RunningServer, header: bytes, request: bytes, *, source: str = PROXY) -> Reply:
    """Write `header` on the raw socket, then TLS and one request over the same socket."""
    raw = connect(server, source)
    raw.sendall(header)
    return request_over(raw, server, request)


def proxied_in_one_segment(server: RunningServer, header: bytes, request: bytes) -> Reply:
    """Send the header and the ClientHello in one write, so they arrive together."""
    context = server.ssl_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with connect(server) as raw:
        pending = header
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(pending + outgoing.read())
                pending = b""
                data = raw.recv(65536)
                assert data, "server closed during the handshake"
                incoming.write(data)
        tls.write(request)
        raw.sendall(outgoing.read())
        received = b""
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                data = raw.recv(65536)
                if not data:
                    break
                incoming.write(data)
                continue
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError):
                break
            if not chunk:
                break
            received += chunk
        return parse_reply(received)


def cacerts(server: RunningServer) -> bytes:
    return build_request("GET", CACERTS, port=server.port)


def enroll(server: RunningServer, user: str, password: str) -> bytes:
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(user, password)}
    return build_request("POST", ENROLL, csr_body(csr), headers, server.port)


def connection_lines(
    caplog: pytest.LogCaptureFixture, needle: str, count: int = 1, wait: float = 5.0
) -> list[str]:
    """The server's connection log lines containing `needle`, waiting up to `wait` s for
    `count` of them (the server logs a connection after the client has its response)."""
    deadline = time.monotonic() + wait
    while True:
        lines = [
            r.getMessage()
            for r in caplog.records
            if r.name == "python_est.server" and needle in r.getMessage()
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.02)


def closed_without_tls(raw: socket.socket) -> bool:
    """True when the server closes the socket (EOF or reset) without sending anything."""
    raw.settimeout(10)
    try:
        return raw.recv(1) == b""
    except ConnectionResetError:
        return True
    finally:
        raw.close()


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD, group_bits=2048)
    return running


@pytest.fixture
def server_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="python_est.server")
    return caplog


def test_v1_and_v2_headers_give_the_client_address(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    assert proxied(server, v1(CLIENT_A), cacerts(server)).status == 200
    assert proxied(server, v2(CLIENT_B), cacerts(server)).status == 200
    (line_a,) = connection_lines(server_log, f"{CLIENT_A} TLS")
    assert line_a.endswith(f"proxy={PROXY}") and f'"GET {CACERTS}" 200' in line_a
    (line_b,) = connection_lines(server_log, f"{CLIENT_B} TLS")
    assert line_b.endswith(f"proxy={PROXY}")


def test_a_header_and_client_hello_in_one_segment_are_split_exactly(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    for header in (v2(CLIENT_A, 1111), v1(CLIENT_B, 2222)):
        assert proxied_in_one_segment(server, header, cacerts(server)).status == 200
    assert connection_lines(server_log, f"{CLIENT_A} TLS")
    assert connection_lines(server_log, f"{CLIENT_B} TLS")


def test_a_header_trickled_in_pieces_is_reassembled(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    for header in (v1(CLIENT_A), v2(CLIENT_B)):
        raw = connect(server)
        for piece in (header[:3], header[3:14], header[14:-1], header[-1:]):
            raw.sendall(piece)
            time.sleep(0.05)
        assert request_over(raw, server, cacerts(server)).status == 200
    assert connection_lines(server_log, f"{CLIENT_A} TLS")
    assert connection_lines(server_log, f"{CLIENT_B} TLS")


def test_a_local_header_keeps_the_proxy_address(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    assert proxied(server, v2(None), cacerts(server)).status == 200
    assert proxied(server, b"PROXY UNKNOWN\r\n", cacerts(server)).status == 200
    lines = connection_lines(server_log, f"{PROXY} TLS", count=2)
    assert len(lines) == 2 and not any("proxy=" in line for line in lines)


def test_failed_logins_lock_the_proxied_client_not_the_proxy(server: RunningServer) -> None:
    # Three wrong passwords for three names from A: A's address is locked for every user
    # without a recent login from it.
    for n, header in enumerate((v1(CLIENT_A), v2(CLIENT_A), v1(CLIENT_A))):
        assert proxied(server, header, enroll(server, f"mallory{n}", "x")).status == 401
    locked = proxied(server, v2(CLIENT_A), enroll(server, USER, PASSWORD))
    assert locked.status == 429 and int(locked.headers["Retry-After"]) > 0
    # B comes through the same proxy, and so does a direct client: neither is locked.
    assert proxied(server, v2(CLIENT_B), enroll(server, USER, PASSWORD)).status == 200
    direct = connect(server, "127.0.0.1")
    assert request_over(direct, server, enroll(server, USER, PASSWORD)).status == 200


def test_the_connection_cap_counts_proxied_clients_not_the_proxy(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    # Two connections from A that name A and then stall before TLS: A's cap (2) is reached.
    stalled = [connect(server) for _ in range(2)]
    for raw in stalled:
        raw.sendall(v1(CLIENT_A))
    deadline = time.monotonic() + 5
    while server.server.connections_from(CLIENT_A) < 2:  # the headers were read and counted
        assert time.monotonic() < deadline, "the stalled connections were never counted"
        time.sleep(0.02)
    third = connect(server)
    third.sendall(v1(CLIENT_A))
    assert closed_without_tls(third)
    # Four connections from the proxy at once, cap 2: the proxy itself is not capped.
    assert proxied(server, v1(CLIENT_B), cacerts(server)).status == 200
    assert proxied(server, v2("198.51.100.9"), cacerts(server)).status == 200
    for raw in stalled:
        raw.close()


def test_an_untrusted_source_is_a_direct_client(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    direct = connect(server, "127.0.0.1")
    assert request_over(direct, server, cacerts(server)).status == 200
    assert connection_lines(server_log, "127.0.0.1 TLS")
    # A header from an untrusted source is not believed: it is just bytes before TLS.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        proxied(server, v1(CLIENT_A), cacerts(server), source="127.0.0.1")
    assert connection_lines(server_log, "127.0.0.1 - handshake failed")
    assert not connection_lines(server_log, CLIENT_A, wait=0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"PROXY TCP4 203.0.113.07 127.0.0.1 1 2\r\n", "bad PROXY header: PROXY v1: bad TCP4"),
        (b"PROXY TCP4 203.0.113.7 127.0.0.1 1 2\n", "bad PROXY header: PROXY v1: not a line"),
        (b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", "bad PROXY header: not a PROXY"),
        (V2_SIGNATURE + b"\x22\x11\x00\x0c" + bytes(12), "bad PROXY header: PROXY v2: unknown"),
        (b"GET / HTTP/1.1\r\n\r\n", "bad PROXY header: not a PROXY"),
    ],
)
def test_garbage_from_a_trusted_proxy_is_closed_and_the_server_keeps_serving(
    server: RunningServer, server_log: pytest.LogCaptureFixture, data: bytes, reason: str
) -> None:
    raw = connect(server)
    raw.sendall(data)
    assert closed_without_tls(raw)
    (line,) = connection_lines(server_log, reason)
    assert line.startswith(f"{PROXY} - ")
    assert proxied(server, v2(CLIENT_A), cacerts(server)).status == 200


def test_a_trusted_proxy_must_send_its_header_in_time(
    server: RunningServer, server_log: pytest.LogCaptureFixture
) -> None:
    # No header at all: a plain TLS client from the proxy's address is refused.
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request_over(connect(server), server, cacerts(server))
    assert connection_lines(server_log, f"{PROXY} - bad PROXY header: not a PROXY")
    # Half a header, then nothing: closed at the handshake deadline (2 s).
    raw = connect(server)
    raw.sendall(v1(CLIENT_A)[:20])
    started = time.monotonic()
    assert closed_without_tls(raw)
    assert 1.0 < time.monotonic() - started < 5
    assert connection_lines(server_log, f"{PROXY} - no PROXY header before the deadline")
    # Closing before the header is complete (a TCP health check) is one short line.
    raw = connect(server)
    raw.sendall(b"PROXY ")
    raw.close()
    assert connection_lines(server_log, f"{PROXY} - closed before a complete PROXY header")
    assert proxied(server, v1(CLIENT_B), cacerts(server)).status == 200


def test_the_setting_changes_for_new_connections(
    start_est_server: Callable[[str], RunningServer], server_log: pytest.LogCaptureFixture
) -> None:
    server = start_est_server("")  # proxy_protocol off: the proxy's address is a direct client
    assert request_over(connect(server), server, cacerts(server)).status == 200
    assert connection_lines(server_log, f"{PROXY} TLS")
    # What a SIGHUP reload does with a new [server] proxy_protocol / trusted_proxies.
    server.server.set_proxy_protocol(True, [ipaddress.ip_network(PROXY)])
    assert proxied(server, v1(CLIENT_A), cacerts(server)).status == 200
    assert connection_lines(server_log, f"{CLIENT_A} TLS")
    server.server.set_proxy_protocol(False, [ipaddress.ip_network(PROXY)])
    assert request_over(connect(server), server, cacerts(server)).status == 200
    assert len(connection_lines(server_log, f"{PROXY} TLS", count=2)) == 2
