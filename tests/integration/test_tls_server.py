"""The TLS server on real sockets: who the handler sees, SRP, tls-unique, framing, robustness."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import random
import socket
import ssl
import time
import warnings
from collections.abc import Iterator

import pytest
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.constants import AlertDescription, CipherSuite
from tlslite.errors import TLSRemoteAlert
from tlslite.extensions import SNIExtension
from tlslite.messages import ClientHello

from python_est.config import TlsConfig
from python_est.errors import Forbidden
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import PeerIdentity
from python_est.server import EstServer
from python_est.tls import TlsEndpoint
from python_est.users import UserStore
from tests.conftest import captured_records
from tests.tls_support import (
    SRP_PASSWORD,
    SRP_USER,
    Pki,
    make_pki,
    make_users,
    parse_echo,
    running_server,
)

pytestmark = pytest.mark.integration

GET = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
LEGACY_CBC = TlsConfig(
    min_version="1.0",
    allow_legacy=True,
    cipher_names=("aes256gcm", "aes128gcm", "chacha20-poly1305", "aes256", "aes128"),
    mac_names=("aead", "sha256", "sha384", "sha"),
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    return make_users(tmp_path_factory.mktemp("users"))


@pytest.fixture(scope="module")
def server(pki: Pki, users: UserStore) -> Iterator[EstServer]:
    with running_server(pki, users) as srv:
        yield srv


@pytest.fixture
def logs() -> Iterator[list[logging.LogRecord]]:
    with captured_records("python_est", logging.DEBUG) as records:
        yield records


@dataclasses.dataclass
class Reply:
    status: int
    head: bytes
    body: bytes
    tls_unique: bytes | None
    session: ssl.SSLSession | None
    reused: bool

    @property
    def echo(self) -> dict[str, str]:
        return parse_echo(self.body)


def client_context(
    pki: Pki,
    cert: str | None = None,
    *,
    maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2,
    ciphers: str | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca_path))
    ctx.maximum_version = maximum
    if ciphers:
        ctx.set_ciphers(ciphers)
    if cert is not None:
        cred = pki.clients[cert]
        ctx.load_cert_chain(str(cred.cert_path), str(cred.key_path))
    return ctx


def read_all(sock: socket.socket | ssl.SSLSocket) -> bytes:
    chunks = []
    while True:
        try:
            data = sock.recv(65536)
        except (ssl.SSLEOFError, ConnectionResetError):
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def split(raw: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def request(
    server: EstServer,
    ctx: ssl.SSLContext,
    payload: bytes = GET,
    session: ssl.SSLSession | None = None,
) -> Reply:
    with socket.create_connection(server.server_address, timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
            unique = tls.get_channel_binding("tls-unique")
            tls.sendall(payload)
            status, head, body = split(read_all(tls))
            return Reply(status, head, body, unique, tls.session, bool(tls.session_reused))


def srp_request(
    server: EstServer, user: str, password: str, key_exchange: str = "srp_sha"
) -> dict[str, str]:
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = [key_exchange]
    settings.cipherNames = ["aes256", "aes128"]
    with socket.create_connection(server.server_address, timeout=10) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientSRP(user, password, settings=settings)
        conn.sendall(GET)
        chunks = []
        while data := conn.recv(65536):
            chunks.append(bytes(data))
        status, _, body = split(b"".join(chunks))
        assert status == 200
        return parse_echo(body)


# --- certificate clients -------------------------------------------------------------------


def test_client_without_certificate_is_anonymous(server: EstServer, pki: Pki) -> None:
    reply = request(server, client_context(pki))
    assert reply.status == 200
    echo = reply.echo
    assert echo["auth"] == "none"
    assert echo["cert_subject"] == ""
    assert echo["version"] == "TLS1.2"
    assert echo["suite"].startswith("TLS_ECDHE_")
    assert echo["target"] == "/.well-known/est/cacerts"


def test_valid_client_certificate_authenticates(server: EstServer, pki: Pki) -> None:
    echo = request(server, client_context(pki, "valid")).echo
    assert echo["auth"] == "cert"
    assert echo["cert_valid"] == "True"
    assert echo["cert_subject"] == "CN=device-1"
    assert echo["cert_is_ra"] == "False"


def test_ra_certificate_is_flagged(server: EstServer, pki: Pki) -> None:
    echo = request(server, client_context(pki, "ra")).echo
    assert (echo["auth"], echo["cert_is_ra"]) == ("cert", "True")


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("rogue", "validation failed"),
        ("foreign", "validation failed"),
        ("expired", "not valid at validation time"),
        ("revoked", "revoked"),
    ],
)
def test_unacceptable_certificate_authenticates_nobody(
    server: EstServer, pki: Pki, kind: str, reason: str
) -> None:
    echo = request(server, client_context(pki, kind)).echo
    assert echo["auth"] == "none"
    assert echo["cert_valid"] == "False"
    assert reason in echo["cert_reason"]


def test_tls_unique_matches_openssl_on_full_and_resumed_handshakes(
    server: EstServer, pki: Pki
) -> None:
    ctx = client_context(pki, "valid")
    full = request(server, ctx)
    resumed = request(server, ctx, session=full.session)
    assert not full.reused and resumed.reused
    for reply in (full, resumed):
        assert reply.tls_unique is not None and len(reply.tls_unique) == 12
        assert reply.echo["tls_unique"] == reply.tls_unique.hex()
    assert resumed.echo["resumed"] == "True"
    assert full.tls_unique != resumed.tls_unique
    # The resumed session still carries the (re-validated) client certificate.
    assert resumed.echo["auth"] == "cert"


def test_tls13_is_available_when_configured(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users, params=TlsConfig(max_version="1.3")) as srv:
        ctx = client_context(pki, "valid", maximum=ssl.TLSVersion.TLSv1_3)
        ctx.set_alpn_protocols(["h2", "http/1.1"])  # tlslite crashes on ALPN unless given alpn=
        echo = request(srv, ctx).echo
    assert echo["version"] == "TLS1.3"
    assert echo["tls_unique"] == ""  # RFC 9266: no tls-unique in TLS 1.3
    assert echo["auth"] == "cert"


def test_replaced_endpoint_takes_over_new_connections(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users) as srv:
        ctx = client_context(pki, "valid")
        first = request(srv, ctx)
        assert isinstance(srv.handshaker, TlsEndpoint)
        srv.handshaker = srv.handshaker.replace(chain_validator=None, verifier_db=None)
        after = request(srv, ctx, session=first.session)
        with pytest.raises(TLSRemoteAlert):
            srp_request(srv, SRP_USER, SRP_PASSWORD)
    # Fresh session caches: no resumption across the swap, and the new rules apply.
    assert not after.reused
    assert (first.echo["auth"], after.echo["auth"]) == ("cert", "none")
    assert after.echo["cert_reason"] == "no client trust anchors"


# --- SRP clients ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_exchange", "suite"),
    [
        ("srp_sha", "TLS_SRP_SHA_WITH_AES_256_CBC_SHA"),
        ("srp_sha_rsa", "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA"),
    ],
)
def test_srp_user_is_identified(server: EstServer, key_exchange: str, suite: str) -> None:
    echo = srp_request(server, SRP_USER, SRP_PASSWORD, key_exchange)
    assert (echo["auth"], echo["srp_user"], echo["suite"]) == ("srp", SRP_USER, suite)
    assert len(bytes.fromhex(echo["tls_unique"])) == 12


def test_unknown_user_fails_like_wrong_password(server: EstServer) -> None:
    alerts = []
    for user, password in ((SRP_USER, "wrong"), ("nobody", SRP_PASSWORD)):
        with pytest.raises(TLSRemoteAlert) as caught:
            srp_request(server, user, password)
        alerts.append(caught.value.description)
    assert alerts == [AlertDescription.bad_record_mac] * 2


def test_srp_is_refused_when_turned_off(pki: Pki) -> None:
    with running_server(pki, None) as srv, pytest.raises(TLSRemoteAlert):
        srp_request(srv, SRP_USER, SRP_PASSWORD)


# --- versions and suites -------------------------------------------------------------------


def legacy_context(pki: Pki, version: ssl.TLSVersion, ciphers: str) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ssl deprecates TLS 1.0/1.1
        ctx = client_context(pki, maximum=version, ciphers=ciphers)
        ctx.minimum_version = version
    return ctx


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_versions_need_legacy_mode(
    server: EstServer, pki: Pki, users: UserStore, version: ssl.TLSVersion
) -> None:
    ctx = legacy_context(pki, version, "DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        request(server, ctx)
    with running_server(pki, users, params=LEGACY_CBC) as legacy:
        echo = request(legacy, ctx).echo
    assert (
        echo["version"]
        == {ssl.TLSVersion.TLSv1: "TLS1.0", ssl.TLSVersion.TLSv1_1: "TLS1.1"}[version]
    )


def tlslite_handshake(server: EstServer, cipher: str, key_exchange: str) -> str:
    """A certificate-suite handshake offering one cipher and key exchange (OpenSSL 3 here has
    no 3DES at all); returns the negotiated suite's name."""
    settings = HandshakeSettings()
    settings.minVersion = settings.maxVersion = (3, 3)
    settings.cipherNames = [cipher]
    settings.macNames = ["sha"]
    settings.keyExchangeNames = [key_exchange]
    with socket.create_connection(server.server_address, timeout=10) as raw:
        conn = TLSConnection(raw)
        conn.handshakeClientCert(settings=settings)
        name: str = CipherSuite.ietfNames[conn.session.cipherSuite]
        conn.close()
        return name


def test_rsa_key_exchange_is_refused(server: EstServer, pki: Pki) -> None:
    ctx = client_context(pki, ciphers="AES128-SHA:AES128-GCM-SHA256:AES256-GCM-SHA384")
    with pytest.raises(ssl.SSLError, match=r"HANDSHAKE_FAILURE|INSUFFICIENT_SECURITY"):
        request(server, ctx)


@pytest.mark.parametrize(("cipher", "key_exchange"), [("3des", "ecdhe_rsa"), ("aes128", "rsa")])
def test_3des_and_rsa_key_exchange_need_legacy_mode(
    server: EstServer, pki: Pki, users: UserStore, cipher: str, key_exchange: str
) -> None:
    with pytest.raises(TLSRemoteAlert):
        tlslite_handshake(server, cipher, key_exchange)
    params = dataclasses.replace(
        LEGACY_CBC,
        cipher_names=(*LEGACY_CBC.cipher_names, "3des"),
        key_exchange_names=("ecdhe_rsa", "rsa"),
    )
    with running_server(pki, users, params=params) as legacy:
        suite = tlslite_handshake(legacy, cipher, key_exchange)
    expected = {"3des": "3DES_EDE_CBC_SHA", "aes128": "AES_128_CBC_SHA"}[cipher]
    assert suite == f"TLS_{key_exchange.upper()}_WITH_{expected}"


# --- HTTP framing and errors ---------------------------------------------------------------


def test_chunked_body_reaches_the_handler(server: EstServer, pki: Pki) -> None:
    payload = (
        b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: x\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    )
    echo = request(server, client_context(pki), payload).echo
    assert (echo["method"], echo["body_length"]) == ("POST", "11")


def test_expect_100_continue_is_answered_before_the_body(server: EstServer, pki: Pki) -> None:
    ctx = client_context(pki)
    with socket.create_connection(server.server_address, timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            )
            assert tls.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
            tls.sendall(b"hello")
            status, _, body = split(read_all(tls))
    assert status == 200 and parse_echo(body)["body_length"] == "5"


def test_oversized_body_gets_413(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users, max_body_bytes=1000) as srv:
        reply = request(
            srv,
            client_context(pki),
            b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n" + b"a" * 1001,
        )
    assert reply.status == 413
    assert b"Connection: close" in reply.head


def _refuse(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
    if request.target == "/bug":
        raise RuntimeError("a bug in the application")
    raise Forbidden("not for you")


def test_errors_become_responses(pki: Pki, users: UserStore, logs: list[logging.LogRecord]) -> None:
    with running_server(pki, users, handler=_refuse) as srv:
        forbidden = request(srv, client_context(pki))
        bug = request(srv, client_context(pki), b"GET /bug HTTP/1.1\r\nHost: x\r\n\r\n")
    assert forbidden.status == 403 and b"not for you" in forbidden.body
    assert b"text/plain" in forbidden.head
    assert bug.status == 500 and b"bug" not in bug.body
    assert any(r.exc_info and r.levelno == logging.ERROR for r in logs)


def test_connection_is_logged_once_with_its_facts(
    server: EstServer, pki: Pki, logs: list[logging.LogRecord]
) -> None:
    request(server, client_context(pki, "valid"))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [r.getMessage() for r in logs if r.name == "python_est.server"]
        if lines:
            break
        time.sleep(0.02)
    assert len(lines) == 1
    line = lines[0]
    for part in ("127.0.0.1", "TLS1.2", "auth=cert:CN=device-1", "GET /.well-known/est/cacerts"):
        assert part in line
    assert " 200 " in line and line.rstrip().endswith("ms")


# --- robustness ----------------------------------------------------------------------------


def test_idle_connections_do_not_lock_out_a_real_client(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users, max_connections=16, handshake_timeout=0.5) as srv:
        idle = [socket.create_connection(srv.server_address) for _ in range(50)]
        try:
            started = time.monotonic()
            reply = request(srv, client_context(pki))
            elapsed = time.monotonic() - started
        finally:
            for sock in idle:
                sock.close()
    assert reply.status == 200
    # 50 idle connections through 16 workers at 0.5 s each: about four rounds.
    assert elapsed < 6


def test_trickling_client_is_cut_off_at_the_deadline(pki: Pki, users: UserStore) -> None:
    hello = client_hello()
    with running_server(pki, users, handshake_timeout=1.0) as srv:
        with socket.create_connection(srv.server_address, timeout=10) as sock:
            started = time.monotonic()
            with pytest.raises(OSError):
                for byte in hello:
                    sock.sendall(bytes([byte]))
                    time.sleep(0.05)
                    if time.monotonic() - started > 5:
                        break
            elapsed = time.monotonic() - started
    assert elapsed < 3


def test_slow_request_is_dropped_at_the_deadline(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users, request_timeout=0.5) as srv:
        ctx = client_context(pki)
        with socket.create_connection(srv.server_address, timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET / HTTP/1.1\r\n")
                started = time.monotonic()
                assert read_all(tls) == b""
                elapsed = time.monotonic() - started
    assert 0.3 < elapsed < 3


def client_hello() -> bytes:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def mutate(hello: bytes, rng: random.Random) -> bytes:
    data = bytearray(hello)
    choice = rng.randrange(4)
    if choice == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif choice == 1:
        del data[rng.randrange(5, len(data)) :]
    elif choice == 2:
        at = rng.randrange(5, len(data))
        data[at:at] = rng.randbytes(rng.randint(1, 16))
    else:
        # Aim at the length fields of the record, the handshake and the first extensions.
        at = rng.choice([3, 4, 6, 7, 8, *range(40, min(len(data), 120))])
        data[at] = rng.choice([0, 1, 0x7F, 0x80, 0xFF, data[at] ^ 1])
    return bytes(data)


def throw(address: tuple[str, int], payload: bytes) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            read_all(sock)
        except OSError:
            pass  # the server may reset a connection it gave up on


def test_fuzzed_client_hellos_leave_the_server_answering(
    pki: Pki, users: UserStore, logs: list[logging.LogRecord]
) -> None:
    rng = random.Random(7030)
    hello = client_hello()
    payloads = [mutate(hello, rng) for _ in range(1000)]
    payloads += [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", rng.randbytes(5000), b"\x16\x03\x01\xff\xff"]
    with running_server(pki, users, handshake_timeout=2.0) as srv:
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: throw(srv.server_address, p), payloads))
        reply = request(srv, client_context(pki, "valid"))
    assert reply.status == 200 and reply.echo["auth"] == "cert"
    bugs = [r for r in logs if r.levelno >= logging.ERROR]
    assert bugs == []


def test_tlslite_crash_on_a_malformed_hello_is_contained(
    server: EstServer, pki: Pki, logs: list[logging.LogRecord]
) -> None:
    # An SNI extension without a host_name entry makes tlslite 0.8.2 raise IndexError.
    sni = SNIExtension().create(serverNames=[SNIExtension.ServerName(1, bytearray(b"x"))])
    suites = [CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
    hello = ClientHello().create((3, 3), bytearray(32), bytearray(0), suites, extensions=[sni])
    body = bytes(hello.write())
    throw(server.server_address, b"\x16\x03\x03" + len(body).to_bytes(2, "big") + body)
    assert request(server, client_context(pki)).status == 200
    contained = [r for r in logs if r.exc_info and r.exc_info[0] is IndexError]
    assert contained and all(r.levelno == logging.DEBUG for r in contained)


def test_shutdown_stops_accepting(pki: Pki, users: UserStore) -> None:
    with running_server(pki, users) as srv:
        address = srv.server_address
        assert request(srv, client_context(pki)).status == 200
    with pytest.raises(OSError):
        socket.create_connection(address, timeout=2).close()
