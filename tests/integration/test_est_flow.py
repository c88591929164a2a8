"""The whole RFC 7030 flow over real TLS, once per way of authenticating.

cacerts -> simpleenroll (Basic, TLS-SRP or client certificate) -> simplereenroll with the new
certificate, against the server `python-est serve` builds, with the ledger checked each time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from est_harness import (
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    srp,
    write_credentials,
)
from python_est import wire
from python_est.ledger import IssuedCertificate
from python_est.messages import CERTS_ONLY, PKCS7_MIME

pytestmark = pytest.mark.integration

PASSWORD = "long enough password"


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server("[label:iot]\nvalidity_days = 7\n")
    assert running.state.users is not None
    running.state.users.add("device-1", PASSWORD)
    return running


def enroll_request(
    server: RunningServer, path: str, cn: str, **headers: str
) -> tuple[bytes, object]:
    csr, key = make_csr(cn)
    request = build_request(
        "POST",
        path,
        csr_body(csr),
        {"Content-Type": "application/pkcs10", **headers},
        server.port,
    )
    return request, key


def only_cert(reply_body: bytes) -> x509.Certificate:
    certs = wire.decode_certs_only(reply_body)
    assert len(certs) == 1
    return certs[0]


def verify_against_cacerts(server: RunningServer, cert: x509.Certificate) -> None:
    reply = https(
        server.port,
        build_request("GET", "/.well-known/est/cacerts", port=server.port),
        cafile=server.ca_file,
    )
    assert reply.status == 200
    assert reply.headers["Content-Type"] == PKCS7_MIME
    chain = wire.decode_certs_only(reply.body)
    issuer = next(c for c in chain if c.subject == cert.issuer)
    cert.verify_directly_issued_by(issuer)


def reenroll(
    server: RunningServer, tmp: Path, cert: x509.Certificate, key: object
) -> x509.Certificate:
    cert_path, key_path = write_credentials(tmp, "current", cert, key)  # type: ignore[arg-type]
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    request, _ = enroll_request(server, "/.well-known/est/simplereenroll", str(cn))
    reply = https(server.port, request, cafile=server.ca_file, client_cert=(cert_path, key_path))
    assert reply.status == 200, reply.body
    renewed = only_cert(reply.body)
    assert renewed.subject == cert.subject
    assert renewed.serial_number != cert.serial_number
    entry = server.state.ledger.get(renewed.serial_number)
    assert entry is not None and entry.operation == "simplereenroll"
    assert entry.auth_method == "cert"
    return renewed


def test_basic_flow(server: RunningServer, tmp_path: Path) -> None:
    request, key = enroll_request(
        server,
        "/.well-known/est/simpleenroll",
        "device-1",
        Authorization=basic("device-1", PASSWORD),
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == CERTS_ONLY
    assert int(reply.headers["Content-Length"]) == len(reply.body)
    cert = only_cert(reply.body)
    assert cert.public_key() == key.public_key()  # type: ignore[attr-defined]
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None
    assert (entry.requester, entry.auth_method, entry.operation) == (
        "device-1",
        "basic",
        "simpleenroll",
    )
    verify_against_cacerts(server, cert)
    reenroll(server, tmp_path, cert, key)


def test_srp_flow(server: RunningServer, tmp_path: Path) -> None:
    request, key = enroll_request(server, "/.well-known/est/simpleenroll", "device-1")
    reply = srp(server.port, "device-1", PASSWORD, request)
    assert reply.status == 200, reply.body
    cert = only_cert(reply.body)
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.auth_method == "srp"
    reenroll(server, tmp_path, cert, key)


def test_certificate_flow_and_label(server: RunningServer, tmp_path: Path) -> None:
    issued, key = server.state.ca.issue_client_certificate(common_name="device-9")
    # Recorded as issued under iot: a certificate authenticates only on its own label.
    server.state.ledger.record(
        IssuedCertificate.from_certificate(
            issued, requester="test", auth_method="admin", label="iot", operation="simpleenroll"
        )
    )
    cert_path, key_path = write_credentials(tmp_path, "device9", issued, key)
    request, _ = enroll_request(server, "/.well-known/est/iot/simpleenroll", "device-9")
    reply = https(server.port, request, cafile=server.ca_file, client_cert=(cert_path, key_path))
    assert reply.status == 200, reply.body
    cert = only_cert(reply.body)
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime.days <= 7
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.label == "iot" and entry.auth_method == "cert"


def test_anonymous_enroll_gets_a_basic_challenge(server: RunningServer) -> None:
    request, _ = enroll_request(
        server, "/.well-known/est/simpleenroll", "device-1", **{"User-Agent": "libest 3.2.0p"}
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 401
    assert reply.headers["WWW-Authenticate"].startswith('Basic realm="python-est"')
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reply.body.strip()
    # Without User-Agent (Bouncy Castle), the challenge has no body: BC fails on one.
    request, _ = enroll_request(server, "/.well-known/est/simpleenroll", "device-1")
    bare = https(server.port, request, cafile=server.ca_file)
    assert (bare.status, bare.headers["Content-Length"], bare.body) == (401, "0", b"")
    assert bare.headers["WWW-Authenticate"] == reply.headers["WWW-Authenticate"]


def test_wrong_password_is_401_and_nothing_is_issued(server: RunningServer) -> None:
    before = server.state.ledger.count()
    request, _ = enroll_request(
        server, "/.well-known/est/simpleenroll", "device-1", Authorization=basic("device-1", "nope")
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 401
    assert server.state.ledger.count() == before


def test_reenroll_over_password_only_is_403(server: RunningServer) -> None:
    request, _ = enroll_request(
        server,
        "/.well-known/est/simplereenroll",
        "device-1",
        Authorization=basic("device-1", PASSWORD),
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 403
    assert b"4.2.2" in reply.body


def test_revoked_certificate_cannot_reenroll(server: RunningServer, tmp_path: Path) -> None:
    request, key = enroll_request(
        server,
        "/.well-known/est/simpleenroll",
        "device-1",
        Authorization=basic("device-1", PASSWORD),
    )
    cert = only_cert(https(server.port, request, cafile=server.ca_file).body)
    server.state.ledger.revoke(cert.serial_number, "keyCompromise")
    cert_path, key_path = write_credentials(tmp_path, "revoked", cert, key)  # type: ignore[arg-type]
    again, _ = enroll_request(server, "/.well-known/est/simplereenroll", "device-1")
    reply = https(server.port, again, cafile=server.ca_file, client_cert=(cert_path, key_path))
    assert reply.status == 403
    assert b"revoked" in reply.body


def test_csrattrs_is_anonymous_and_204_without_configuration(server: RunningServer) -> None:
    reply = https(
        server.port,
        build_request("GET", "/.well-known/est/csrattrs", port=server.port),
        cafile=server.ca_file,
    )
    assert reply.status == 204
    assert reply.headers["Content-Length"] == "0"


def test_routing_errors(server: RunningServer) -> None:
    def get(path: str) -> int:
        return https(
            server.port, build_request("GET", path, port=server.port), cafile=server.ca_file
        ).status

    assert get("/.well-known/est/nolabel/cacerts") == 404
    assert get("/.well-known/est/iot/cacerts") == 200
    assert get("/.well-known/est/a/b/cacerts") == 404
    assert get("/.well-known/est//cacerts") == 404
    assert get("/.well-known/est/simpleenroll") == 405
    assert get("/est/cacerts") == 404
    fullcmc = https(
        server.port,
        build_request(
            "POST",
            "/.well-known/est/fullcmc",
            b"MAA=",
            {"Content-Type": "application/pkcs7-mime"},
            server.port,
        ),
        cafile=server.ca_file,
    )
    assert fullcmc.status == 501


def test_issuing_ca_leaf_only_client_can_reenroll(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    server = start_est_server("[ca]\nissuing_ca = yes\n")
    assert len(server.state.ca.chain) == 2
    assert server.state.users is not None
    server.state.users.add("device-1", PASSWORD)
    request, key = enroll_request(
        server,
        "/.well-known/est/simpleenroll",
        "device-1",
        Authorization=basic("device-1", PASSWORD),
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    cert = only_cert(reply.body)
    assert cert.issuer == server.state.ca.chain[0].subject
    # The client presents only its leaf; the server completes the path with its issuing CA.
    reenroll(server, tmp_path, cert, key)
