"""An SNI that is not a DNS name (libest sends its `-s` host, IP literals included) is ignored.

tlslite-ng alone answers such a ClientHello with illegal_parameter; OpenSSL servers ignore the
name, and so do we (`python_est.tls.sni`). Driven by `openssl s_client -servername`, curl with a
host name that is not a valid DNS name, and a tlslite SRP client that puts an IP into SNI.
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.messages import ClientHello

from est_harness import parse_reply, read_all
from python_est.config import TlsConfig
from python_est.server import EstServer
from python_est.users import UserStore
from tests.interop.test_tls_interop import REQUEST, echo_of, require, s_client
from tests.tls_support import (
    SRP_PASSWORD,
    SRP_USER,
    Pki,
    make_pki,
    make_users,
    parse_echo,
    running_server,
)

pytestmark = pytest.mark.interop

BAD_DNS_NAME = "est_server.test"  # '_' is not allowed in a host name (RFC 952, RFC 1123 §2.1)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> UserStore:
    return make_users(tmp_path_factory.mktemp("users"))


@pytest.fixture(scope="module")
def server(pki: Pki, users: UserStore) -> Iterator[EstServer]:
    with running_server(pki, users, params=TlsConfig(max_version="1.3")) as srv:
        yield srv


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_s_client_with_an_ip_literal_as_sni(server: EstServer, pki: Pki, version: str) -> None:
    verify = ["-CAfile", str(pki.ca_path), "-verify_ip", "127.0.0.1", "-verify_return_error"]
    result = s_client(server, version, "-servername", "127.0.0.1", *verify)
    assert result.returncode == 0, result.stderr[-500:]
    assert echo_of(result.stdout)["auth"] == "none"


def test_s_client_resumes_a_tls13_session_with_an_ip_literal_as_sni(
    server: EstServer, tmp_path: Path
) -> None:
    # The PSK binder covers the re-serialised ClientHello: ignoring the name must not alter it.
    # tlslite reports a TLS 1.3 PSK resumption as a full handshake, so the client says whether
    # it resumed; -ign_eof instead of -quiet keeps its session report.
    session = str(tmp_path / "session.pem")
    reports = []
    for option in ("-sess_out", "-sess_in"):
        result = subprocess.run(
            [
                require("openssl"),
                *("s_client", "-connect", f"127.0.0.1:{server.server_address[1]}", "-tls1_3"),
                *("-servername", "127.0.0.1", option, session, "-ign_eof"),
            ],
            input=REQUEST,
            capture_output=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr[-500:]
        reports.append(result.stdout)
    assert b"New, TLSv1.3" in reports[0]
    assert b"Reused, TLSv1.3" in reports[1]


def curl_bad_name(server: EstServer, *args: str) -> subprocess.CompletedProcess[str]:
    """curl to a host name that is not a DNS name, resolved to the server: curl sends it as SNI
    (it never sends an IP literal)."""
    port = server.server_address[1]
    return subprocess.run(
        [
            require("curl", "TLS-SRP"),
            *("-sS", "--max-time", "20", "-k", *args),
            *("--resolve", f"{BAD_DNS_NAME}:{port}:127.0.0.1"),
            f"https://{BAD_DNS_NAME}:{port}/.well-known/est/cacerts",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_curl_with_a_host_name_that_is_not_a_dns_name(server: EstServer) -> None:
    result = curl_bad_name(server)
    assert result.returncode == 0, result.stderr
    assert parse_echo(result.stdout.encode())["target"] == "/.well-known/est/cacerts"


def test_curl_srp_with_a_host_name_that_is_not_a_dns_name(server: EstServer) -> None:
    result = curl_bad_name(
        server, "--tlsauthtype", "SRP", "--tlsuser", SRP_USER, "--tlspassword", SRP_PASSWORD
    )
    assert result.returncode == 0, result.stderr
    assert parse_echo(result.stdout.encode())["srp_user"] == SRP_USER


class _IpSniClient(TLSConnection):  # type: ignore[misc]
    """A tlslite client that, like libest, writes an IP literal into server_name.

    tlslite's client refuses such a serverName itself, so it is set on the outgoing hello.
    """

    def _sendMsg(self, msg: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        if isinstance(msg, ClientHello):
            msg.server_name = bytearray(b"127.0.0.1")
        return super()._sendMsg(msg, *args, **kwargs)


def test_srp_client_with_an_ip_literal_as_sni(server: EstServer) -> None:
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha"]
    with socket.create_connection(server.server_address, timeout=10) as raw:
        conn = _IpSniClient(raw)
        conn.handshakeClientSRP(SRP_USER, SRP_PASSWORD, settings=settings)
        conn.sendall(REQUEST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        reply = parse_reply(read_all(conn))
    echo = parse_echo(reply.body)
    assert (reply.status, echo["auth"], echo["srp_user"]) == (200, "srp", SRP_USER)
