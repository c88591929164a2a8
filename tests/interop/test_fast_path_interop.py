"""OpenSSL clients (`openssl s_client`, curl) against the OpenSSL-accelerated tlslite server.

Each test serves one connection with `TlsEndpoint.handshake` on a listening socket and checks
what the client and the server saw, including that records really went through OpenSSL
(`TlsStream.cipher_implementation`) and that one handshake moved the counter of each OpenSSL
seam (`tlslite_seams.COUNTS`). Suites, groups, key types, TLS 1.3, SRP over AES-CBC and
resumption by session ID and by ticket (also across endpoints sharing ticket keys) are covered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from python_est.ca import certificate_pem, private_key_pem
from python_est.config import TlsConfig
from python_est.errors import HandshakeFailed
from python_est.keys import KeyType
from python_est.policy import PeerIdentity
from python_est.tls import TlsEndpoint
from python_est.tls.tlslite_seams import COUNTS
from python_est.users import UserStore
from tests.conftest import require_tool
from tests.tls_support import SRP_PASSWORD, SRP_USER, Pki, make_pki, make_users

pytestmark = pytest.mark.interop

REQUEST = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
BODY = b"fast path ok"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (
    len(BODY),
    BODY,
)


@dataclasses.dataclass(frozen=True)
class Served:
    peer: PeerIdentity
    implementation: str
    client: subprocess.CompletedProcess[bytes]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def ec_server(pki: Pki) -> tuple[Any, Any]:
    cert, key = pki.ca.issue_server_certificate(
        common_name="127.0.0.1",
        dns_names=[],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=KeyType.EC_P256,
        validity_days=2,
    )
    return (cert, pki.ca.certificate), key


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    return make_users(tmp_path_factory.mktemp("users"))


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        sock.settimeout(20)
        yield sock


def endpoint(pki: Pki, server: tuple[Any, Any] | None = None, **kwargs: Any) -> TlsEndpoint:
    chain, key = server or (pki.server_chain, pki.server_key)
    kwargs.setdefault("verifier_db", None)
    kwargs.setdefault("params", TlsConfig())
    return TlsEndpoint(
        cert_chain=chain,
        private_key=key,
        chain_validator=pki.validator(),
        client_ca_names=[pki.ca.root.subject],
        **kwargs,
    )


def serve_one(ep: TlsEndpoint, listener: socket.socket, command: Sequence[str]) -> Served:
    """Start the client, serve its one request, and return what both sides saw."""
    with tempfile.TemporaryFile() as request_file:
        request_file.write(REQUEST)  # s_client -quiet sends it after the handshake
        request_file.seek(0)
        client = subprocess.Popen(
            command, stdin=request_file, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    try:
        sock, address = listener.accept()
        stream, peer = ep.handshake(sock, address[0], time.monotonic() + 10)
        implementation = stream.cipher_implementation
        stream.set_deadline(time.monotonic() + 10)
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = stream.recv(4096)
            assert chunk, request
            request += chunk
        assert request.startswith(b"GET /.well-known/est/cacerts ")
        stream.sendall(RESPONSE)
        stream.close()
        out, err = client.communicate(timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            client.kill()
        client.communicate(timeout=10)
    result = subprocess.CompletedProcess(list(command), client.returncode, out, err)
    return Served(peer, implementation, result)


def s_client(listener: socket.socket, pki: Pki, *args: str) -> list[str]:
    port = listener.getsockname()[1]
    return [
        require_tool("openssl"),
        "s_client",
        "-connect",
        f"127.0.0.1:{port}",
        "-CAfile",
        str(pki.ca_path),
        "-verify_return_error",
        "-quiet",
        *args,
    ]


def assert_fast(served: Served, version: str, suite: str) -> None:
    assert served.client.returncode == 0, served.client.stderr
    assert served.client.stdout.endswith(BODY)
    assert served.implementation == "cryptography"
    assert (served.peer.tls.version, served.peer.tls.cipher_suite) == (version, suite)


TLS12_CASES = [
    ("rsa", "ECDHE-RSA-AES128-GCM-SHA256", "X25519", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"),
    ("rsa", "ECDHE-RSA-AES256-GCM-SHA384", "P-256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    (
        "rsa",
        "ECDHE-RSA-CHACHA20-POLY1305",
        "P-384",
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    ),
    ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256", "P-256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
    # The P-256 certificate needs P-256 offered too (RFC 8422 §5.1); P-521 comes first.
    (
        "ec",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "P-521:P-256",
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    ),
]


@pytest.mark.parametrize(("key", "cipher", "group", "suite"), TLS12_CASES)
def test_tls12_suites_and_groups(
    pki: Pki,
    ec_server: tuple[Any, Any],
    listener: socket.socket,
    key: str,
    cipher: str,
    group: str,
    suite: str,
) -> None:
    ep = endpoint(pki, ec_server if key == "ec" else None)
    command = s_client(listener, pki, "-tls1_2", "-cipher", cipher, "-groups", group)
    assert_fast(serve_one(ep, listener, command), "TLS1.2", suite)


def test_tls12_aes_cbc_with_encrypt_then_mac(pki: Pki, listener: socket.socket) -> None:
    params = TlsConfig(cipher_names=("aes128",), mac_names=("sha256",))
    command = s_client(listener, pki, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-SHA256")
    served = serve_one(endpoint(pki, params=params), listener, command)
    assert_fast(served, "TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256")


def test_memoized_suite_lists_stay_with_their_settings(pki: Pki, listener: socket.socket) -> None:
    # Two endpoints in one process share the suite memo (fastsuites) but not their lists: each
    # still offers exactly what its own cipher_names allow, after the other has filled the memo.
    aes256 = endpoint(pki, params=TlsConfig(cipher_names=("aes256gcm",)))
    chacha = endpoint(pki, params=TlsConfig(cipher_names=("chacha20-poly1305",)))
    both = "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-CHACHA20-POLY1305"
    for ep, suite in (
        (aes256, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
        (chacha, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"),
        (aes256, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"),
    ):
        command = s_client(listener, pki, "-tls1_2", "-cipher", both)
        assert_fast(serve_one(ep, listener, command), "TLS1.2", suite)
    # A client offering only a suite the settings leave out is refused, memo warm or not.
    command = s_client(listener, pki, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    with pytest.raises(HandshakeFailed, match="No mutual ciphersuite"):
        serve_one(aes256, listener, command)


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048])
def test_client_certificate_on_the_fast_path(
    pki: Pki, listener: socket.socket, tmp_path: Path, key_type: KeyType
) -> None:
    # The client's CertificateVerify (ECDSA, or RSA-PSS from OpenSSL) is checked by OpenSSL.
    cert, key = pki.ca.issue_client_certificate(common_name="device-9", key_type=key_type)
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(certificate_pem(cert))
    key_path.write_bytes(private_key_pem(key))
    command = s_client(listener, pki, "-tls1_2", "-cert", str(cert_path), "-key", str(key_path))
    served = serve_one(endpoint(pki), listener, command)
    assert served.client.returncode == 0, served.client.stderr
    assert served.implementation == "cryptography"
    assert served.peer.client_cert is not None and served.peer.client_cert.valid
    assert served.peer.client_cert.leaf == cert


@pytest.mark.parametrize(
    ("key", "suite", "group"),
    [
        ("rsa", "TLS_AES_128_GCM_SHA256", "X25519"),
        ("rsa", "TLS_CHACHA20_POLY1305_SHA256", "P-256"),
        ("ec", "TLS_AES_256_GCM_SHA384", "P-384"),
    ],
)
def test_tls13_suites_and_groups(
    pki: Pki,
    ec_server: tuple[Any, Any],
    listener: socket.socket,
    key: str,
    suite: str,
    group: str,
) -> None:
    ep = endpoint(pki, ec_server if key == "ec" else None, params=TlsConfig(max_version="1.3"))
    command = s_client(listener, pki, "-tls1_3", "-ciphersuites", suite, "-groups", group)
    assert_fast(serve_one(ep, listener, command), "TLS1.3", suite)


def test_tlslite_python_path_still_serves(pki: Pki, listener: socket.socket) -> None:
    command = s_client(listener, pki, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    served = serve_one(endpoint(pki, accelerated=False), listener, command)
    assert served.client.returncode == 0, served.client.stderr
    assert served.implementation == "python"


# tlslite-ng 0.8.2 checks a TLS 1.3 client's CertificateVerify with the key from
# `getEndEntityPublicKey()`, not the one `_check_certchain_with_settings` returns: that
# verification stays in Python (0 below). TLS 1.3 derives record keys twice (handshake, then
# application traffic); TLS 1.2 once.
SEAM_CASES = [
    (
        "1.2",
        "rsa",
        KeyType.EC_P256,
        {"key_exchange": 1, "signing": 1, "public_key": 1, "record_layer": 1},
    ),
    (
        "1.3",
        "ec",
        KeyType.RSA_2048,
        {"key_exchange": 1, "signing": 1, "public_key": 0, "record_layer": 2},
    ),
]


@pytest.mark.parametrize(("version", "server_key", "client_key", "expected"), SEAM_CASES)
def test_a_handshake_goes_through_every_fast_path_seam(
    pki: Pki,
    ec_server: tuple[Any, Any],
    listener: socket.socket,
    tmp_path: Path,
    version: str,
    server_key: str,
    client_key: KeyType,
    expected: dict[str, int],
) -> None:
    # A counter moves only when OpenSSL did the work at its seam: ECDHE or the key share,
    # the server's signature, the client's CertificateVerify, the record keys.
    cert, key = pki.ca.issue_client_certificate(common_name="device-8", key_type=client_key)
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert_path.write_bytes(certificate_pem(cert))
    key_path.write_bytes(private_key_pem(key))
    ep = endpoint(
        pki, ec_server if server_key == "ec" else None, params=TlsConfig(max_version=version)
    )
    flag = f"-tls{version.replace('.', '_')}"
    command = s_client(listener, pki, flag, "-cert", str(cert_path), "-key", str(key_path))
    before = COUNTS.snapshot()
    served = serve_one(ep, listener, command)
    after = COUNTS.snapshot()
    assert served.client.returncode == 0, served.client.stderr
    assert served.peer.client_cert is not None and served.peer.client_cert.valid
    assert served.peer.tls.version == f"TLS{version}"
    assert {seam: after[seam] - before[seam] for seam in after} == expected


def test_the_python_path_moves_no_fast_path_counter(pki: Pki, listener: socket.socket) -> None:
    command = s_client(listener, pki, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
    before = COUNTS.snapshot()
    served = serve_one(endpoint(pki, accelerated=False), listener, command)
    assert served.client.returncode == 0, served.client.stderr
    assert COUNTS.snapshot() == before


def curl_with_srp() -> str:
    """curl's path; skip when it was built without TLS-SRP."""
    curl = require_tool("curl")
    version = subprocess.run([curl, "--version"], capture_output=True, text=True, timeout=10)
    if "TLS-SRP" not in version.stdout:
        pytest.skip("curl lacks TLS-SRP")
    return curl


def test_srp_over_aes_cbc(pki: Pki, users: UserStore, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    command = [
        curl_with_srp(),
        *("-sS", "-k", "--max-time", "20", "--ciphers", "SRP-AES-256-CBC-SHA"),
        *("--tlsauthtype", "SRP", "--tlsuser", SRP_USER, "--tlspassword", SRP_PASSWORD),
        f"https://127.0.0.1:{port}/.well-known/est/cacerts",
    ]
    served = serve_one(endpoint(pki, verifier_db=users.srp_verifiers()), listener, command)
    assert served.client.returncode == 0, served.client.stderr
    assert served.client.stdout == BODY
    assert served.implementation == "cryptography"
    assert served.peer.srp_user == SRP_USER


# --- resumption -----------------------------------------------------------------------------


def resume(
    first: TlsEndpoint,
    second: TlsEndpoint,
    listener: socket.socket,
    pki: Pki,
    session: Path,
    *args: str,
) -> Served:
    """One full handshake with `first`, then an attempt to resume it with `second`."""
    full = serve_one(first, listener, s_client(listener, pki, *args, "-sess_out", str(session)))
    assert full.client.returncode == 0, full.client.stderr
    assert not full.peer.tls.resumed
    again = serve_one(second, listener, s_client(listener, pki, *args, "-sess_in", str(session)))
    assert again.client.returncode == 0, again.client.stderr
    assert again.implementation == "cryptography"
    if full.peer.tls.version != "TLS1.3":  # no tls-unique in TLS 1.3
        assert again.peer.tls.tls_unique != full.peer.tls.tls_unique
    return again


def test_resumption_by_ticket(pki: Pki, listener: socket.socket, tmp_path: Path) -> None:
    ep = endpoint(pki)
    again = resume(ep, ep, listener, pki, tmp_path / "sess", "-tls1_2")
    assert again.peer.tls.resumed


def test_resumption_by_session_id(pki: Pki, listener: socket.socket, tmp_path: Path) -> None:
    ep = endpoint(pki, ticket_keys=lambda: ())  # tickets off: the session cache resumes
    again = resume(ep, ep, listener, pki, tmp_path / "sess", "-tls1_2", "-no_ticket")
    assert again.peer.tls.resumed


def test_tls13_resumption_by_ticket(pki: Pki, listener: socket.socket, tmp_path: Path) -> None:
    # tlslite reports TLS 1.3 PSK resumption as a full handshake (`resumed` stays False), so
    # the client says whether it resumed; -ign_eof instead of -quiet keeps its session report.
    ep = endpoint(pki, params=TlsConfig(max_version="1.3"))
    session = str(tmp_path / "sess")
    reports = []
    for option in ("-sess_out", "-sess_in"):
        command = s_client(listener, pki, "-tls1_3", option, session, "-ign_eof")
        command.remove("-quiet")
        served = serve_one(ep, listener, command)
        assert served.client.returncode == 0, served.client.stderr
        assert served.implementation == "cryptography"
        reports.append(served.client.stdout)
    assert b"New, TLSv1.3" in reports[0]
    assert b"Reused, TLSv1.3" in reports[1]


def test_ticket_keys_shared_by_two_endpoints(
    pki: Pki, listener: socket.socket, tmp_path: Path
) -> None:
    # As two worker processes sharing ticket keys would: either one resumes the other's.
    keys = (secrets.token_bytes(32),)
    first, second = endpoint(pki, ticket_keys=lambda: keys), endpoint(pki, ticket_keys=lambda: keys)
    assert resume(first, second, listener, pki, tmp_path / "sess", "-tls1_2").peer.tls.resumed


def test_a_foreign_ticket_gives_a_full_handshake(
    pki: Pki, listener: socket.socket, tmp_path: Path
) -> None:
    again = resume(endpoint(pki), endpoint(pki), listener, pki, tmp_path / "sess", "-tls1_2")
    assert not again.peer.tls.resumed


# --- routing: a ClientHello that arrives in two pieces ------------------------------------


class SplitFirstWrite:
    """A client socket whose first write (the ClientHello) leaves in two TCP segments."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._first = True

    def send(self, data: bytes) -> int:
        if self._first:
            self._first = False
            self._sock.sendall(data[:7])
            time.sleep(0.05)  # the server peeks a partial record meanwhile
            self._sock.sendall(data[7:])
            return len(data)
        return self._sock.send(data)

    def sendall(self, data: bytes) -> None:
        self.send(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def test_a_split_srp_client_hello_still_takes_the_srp_route(
    pki: Pki, users: UserStore, listener: socket.socket
) -> None:
    from tlslite.api import HandshakeSettings, TLSConnection

    ep = endpoint(pki, verifier_db=users.srp_verifiers())
    client_sock = socket.create_connection(listener.getsockname()[:2])
    sock, address = listener.accept()
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    client = TLSConnection(SplitFirstWrite(client_sock))
    done: list[BaseException | None] = []

    def handshake() -> None:
        try:
            client.handshakeClientSRP(SRP_USER, SRP_PASSWORD, settings=settings)
            done.append(None)
        except Exception as exc:  # reported by the assertion below
            done.append(exc)

    thread = threading.Thread(target=handshake)
    thread.start()
    try:
        stream, peer = ep.handshake(sock, address[0], time.monotonic() + 10)
        thread.join(timeout=10)
        assert done == [None]
        assert peer.srp_user == SRP_USER
        assert stream.cipher_implementation == "cryptography"
        stream.close()
    finally:
        thread.join(timeout=10)
        client_sock.close()
