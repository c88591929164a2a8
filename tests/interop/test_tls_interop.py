"""curl and `openssl s_client` against the TLS server: SRP and certificate clients on one port."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator

import pytest

from python_est.server import EstServer
from python_est.users import UserStore
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

REQUEST = b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def require(tool: str, feature: str | None = None) -> str:
    """The tool's path; skip when it or the feature is missing."""
    path = shutil.which(tool)
    problem = None
    if path is None:
        problem = f"{tool} is not installed"
    elif feature is not None:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
        if feature not in version.stdout:
            problem = f"{tool} lacks {feature}"
    if problem is not None:
        pytest.skip(problem)
    assert path is not None
    return path


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


def url(server: EstServer) -> str:
    return f"https://127.0.0.1:{server.server_address[1]}/.well-known/est/cacerts"


def curl(server: EstServer, *args: str) -> subprocess.CompletedProcess[str]:
    tool = require("curl", "TLS-SRP")
    return subprocess.run(
        [tool, "-sS", "--max-time", "20", *args, url(server)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def curl_srp(
    server: EstServer, user: str, password: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return curl(server, "--tlsauthtype", "SRP", "--tlsuser", user, "--tlspassword", password, *args)


def s_client(server: EstServer, *args: str) -> subprocess.CompletedProcess[bytes]:
    tool = require("openssl")
    port = server.server_address[1]
    return subprocess.run(
        [tool, "s_client", "-connect", f"127.0.0.1:{port}", "-quiet", *args],
        input=REQUEST,
        capture_output=True,
        timeout=30,
    )


def echo_of(stdout: bytes) -> dict[str, str]:
    head, _, body = stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), stdout[:200]
    return parse_echo(body)


# --- SRP with curl -------------------------------------------------------------------------


def test_curl_srp_default_ciphers(server: EstServer) -> None:
    # curl offers SRP and SRP-RSA suites and a TLS 1.3 ClientHello; the server caps it at 1.2.
    result = curl_srp(server, SRP_USER, SRP_PASSWORD, "-k")
    assert result.returncode == 0, result.stderr
    echo = parse_echo(result.stdout.encode())
    assert (echo["auth"], echo["srp_user"], echo["version"]) == ("srp", SRP_USER, "TLS1.2")


def test_curl_pure_srp(server: EstServer) -> None:
    result = curl_srp(server, SRP_USER, SRP_PASSWORD, "-k", "--ciphers", "SRP-AES-256-CBC-SHA")
    assert result.returncode == 0, result.stderr
    echo = parse_echo(result.stdout.encode())
    assert echo["suite"] == "TLS_SRP_SHA_WITH_AES_256_CBC_SHA"
    assert echo["srp_user"] == SRP_USER


def test_curl_srp_rsa_verifies_the_server_certificate(server: EstServer, pki: Pki) -> None:
    result = curl_srp(
        server,
        SRP_USER,
        SRP_PASSWORD,
        "--cacert",
        str(pki.ca_path),
        "--ciphers",
        "SRP-RSA-AES-256-CBC-SHA",
    )
    assert result.returncode == 0, result.stderr
    echo = parse_echo(result.stdout.encode())
    assert echo["suite"] == "TLS_SRP_SHA_RSA_WITH_AES_256_CBC_SHA"
    assert echo["auth"] == "srp"


def test_curl_wrong_password_and_unknown_user_fail_alike(server: EstServer) -> None:
    wrong = curl_srp(server, SRP_USER, "not the password", "-k")
    unknown = curl_srp(server, "nobody", SRP_PASSWORD, "-k")
    assert wrong.returncode == unknown.returncode == 35  # CURLE_SSL_CONNECT_ERROR
    assert "bad record mac" in wrong.stderr
    assert "bad record mac" in unknown.stderr


def test_srp_username_without_srp_suite_proves_nothing(pki: Pki) -> None:
    # tlslite copies the ClientHello's SRP username into every session; with SRP off the
    # server negotiates ECDHE, and the claimed "admin" must not become an identity.
    with running_server(pki, None) as srv:
        result = curl(
            srv,
            "-k",
            "--tls-max",
            "1.2",
            *("--tlsauthtype", "SRP", "--tlsuser", "admin", "--tlspassword", "wrong"),
            *("--ciphers", "SRP-AES-256-CBC-SHA:ECDHE-RSA-AES128-GCM-SHA256"),
        )
    assert result.returncode == 0, result.stderr
    echo = parse_echo(result.stdout.encode())
    assert echo["suite"] == "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    assert (echo["auth"], echo["srp_user"]) == ("none", "")


# --- certificates with curl and openssl s_client --------------------------------------------


@pytest.mark.parametrize(
    ("kind", "auth", "valid"),
    [
        (None, "none", ""),
        ("valid", "cert", "True"),
        ("rogue", "none", "False"),
        ("expired", "none", "False"),
        ("revoked", "none", "False"),
    ],
)
def test_curl_client_certificates(
    server: EstServer, pki: Pki, kind: str | None, auth: str, valid: str
) -> None:
    args = ["--cacert", str(pki.ca_path)]
    if kind is not None:
        cred = pki.clients[kind]
        args += ["--cert", str(cred.cert_path), "--key", str(cred.key_path)]
    result = curl(server, *args)
    assert result.returncode == 0, result.stderr
    echo = parse_echo(result.stdout.encode())
    assert (echo["auth"], echo["cert_valid"]) == (auth, valid)


@pytest.mark.parametrize(
    ("kind", "auth", "valid"),
    [
        (None, "none", ""),
        ("valid", "cert", "True"),
        ("ra", "cert", "True"),
        ("rogue", "none", "False"),
        ("expired", "none", "False"),
        ("revoked", "none", "False"),
    ],
)
def test_s_client_client_certificates(
    server: EstServer, pki: Pki, kind: str | None, auth: str, valid: str
) -> None:
    args = ["-CAfile", str(pki.ca_path), "-verify_ip", "127.0.0.1", "-verify_return_error"]
    if kind is not None:
        cred = pki.clients[kind]
        args += ["-cert", str(cred.cert_path), "-key", str(cred.key_path)]
    result = s_client(server, *args)
    assert result.returncode == 0, result.stderr
    echo = echo_of(result.stdout)
    assert (echo["auth"], echo["cert_valid"]) == (auth, valid)
    if kind == "ra":
        assert echo["cert_is_ra"] == "True"


@pytest.mark.parametrize("version", ["-tls1", "-tls1_1"])
def test_s_client_old_versions_are_refused(server: EstServer, pki: Pki, version: str) -> None:
    # SECLEVEL=0 lets OpenSSL 3 offer them at all; the refusal must come from the server.
    result = s_client(server, version, "-cipher", "DEFAULT:@SECLEVEL=0")
    assert result.returncode != 0
    assert b"alert protocol version" in result.stderr


def test_s_client_rsa_key_exchange_is_refused(server: EstServer) -> None:
    result = s_client(server, "-tls1_2", "-cipher", "AES128-SHA:AES256-SHA:AES128-GCM-SHA256")
    assert result.returncode != 0
    assert b"alert handshake failure" in result.stderr
