"""Revocation over real TLS: `python-est certs revoke` (another process) takes effect at once.

enroll -> reenroll works -> revoke with the CLI in a subprocess -> the certificate neither
reenrolls nor authenticates, not even on a resumed TLS session -> the served CRL lists it.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from est_harness import (
    Reply,
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    parse_reply,
    read_all,
    write_credentials,
)
from python_est import wire
from python_est.ca import crl_number
from python_est.ledger import serial_hex
from python_est.ops import PKIX_CRL

pytestmark = pytest.mark.integration

PASSWORD = "revocation password"
BASE_URL = "https://est.example.net:8443"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(f"[crl]\nbase_url = {BASE_URL}\nvalidity_hours = 24\n")
    assert running.state.users is not None
    running.state.users.add("device-1", PASSWORD)
    return running


def enroll_with_password(
    server: RunningServer,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    csr, key = make_csr("device-1")
    request = build_request(
        "POST",
        "/.well-known/est/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10", "Authorization": basic("device-1", PASSWORD)},
        server.port,
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = wire.decode_certs_only(reply.body)
    return cert, key


def reenroll_request(server: RunningServer) -> bytes:
    csr, _ = make_csr("device-1")
    return build_request(
        "POST",
        "/.well-known/est/simplereenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10"},
        server.port,
    )


def client_context(server: RunningServer, credentials: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(server.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(credentials[0]), str(credentials[1]))
    return context


def https_session(
    server: RunningServer,
    request: bytes,
    context: ssl.SSLContext,
    session: ssl.SSLSession | None = None,
) -> tuple[Reply, ssl.SSLSession | None, bool]:
    """One request over `context` (with a client certificate), optionally resuming `session`."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
            tls.sendall(request)
            reply = parse_reply(read_all(tls))
            return reply, tls.session, bool(tls.session_reused)


def cli(server: RunningServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "python_est", "-c", str(server.root / "est.cfg"), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_revoke_takes_effect_at_once_and_the_crl_lists_it(
    server: RunningServer, tmp_path: Path
) -> None:
    cert, key = enroll_with_password(server)
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [point.full_name for point in cdp] == [
        [x509.UniformResourceIdentifier(f"{BASE_URL}/crl/ca.crl")]
    ]
    context = client_context(server, write_credentials(tmp_path, "device", cert, key))
    before, session, _ = https_session(server, reenroll_request(server), context)
    assert before.status == 200, before.body
    assert session is not None

    result = cli(
        server, "certs", "revoke", serial_hex(cert.serial_number), "--reason", "keyCompromise"
    )
    assert result.returncode == 0, result.stderr
    assert f"revoked {cert.serial_number:X}" in result.stdout
    assert "CRL 2 with 1 revoked certificate(s)" in result.stdout

    # A fresh handshake: the certificate authenticates nobody any more.
    refused, _, _ = https_session(server, reenroll_request(server), context)
    assert refused.status == 403
    # Resuming the session made before the revocation does not bring it back.
    resumed, _, reused = https_session(server, reenroll_request(server), context, session)
    assert reused
    assert resumed.status == 403
    # Nor does it count for /simpleenroll, which would accept a valid certificate.
    csr, _ = make_csr("device-1")
    enroll = build_request(
        "POST",
        "/.well-known/est/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10"},
        server.port,
    )
    denied, _, _ = https_session(server, enroll, context)
    assert denied.status == 401

    served = https(
        server.port, build_request("GET", "/crl/ca.crl", port=server.port), cafile=server.ca_file
    )
    assert served.status == 200
    assert served.headers["Content-Type"] == PKIX_CRL
    assert int(served.headers["Content-Length"]) == len(served.body)
    crl = x509.load_der_x509_crl(served.body)
    assert crl.is_signature_valid(server.state.ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl_number(crl) == 2
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert server.config.crl.file.read_bytes() == served.body


def test_the_crl_is_published_at_start_and_regenerated_on_demand(server: RunningServer) -> None:
    path = server.config.crl.file
    first = x509.load_der_x509_crl(path.read_bytes())
    assert crl_number(first) == 1 and len(first) == 0
    result = cli(server, "certs", "crl")
    assert result.returncode == 0, result.stderr
    assert "CRL 2 with 0 revoked certificate(s)" in result.stdout
    served = https(
        server.port, build_request("GET", "/crl/ca.crl", port=server.port), cafile=server.ca_file
    )
    assert crl_number(x509.load_der_x509_crl(served.body)) == 2


def test_revoking_an_unknown_serial_fails(server: RunningServer) -> None:
    result = cli(server, "certs", "revoke", "ABCDEF")
    assert result.returncode == 1
    assert "no certificate with serial ABCDEF" in result.stderr
