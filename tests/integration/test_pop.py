"""Proof-of-possession linking (RFC 7030 §3.5, RFC 5929) over real TLS.

A Python `ssl` client (OpenSSL) reads tls-unique from its own connection, puts base64 of it in
the CSR's challengePassword and sends the request on that same connection with a raw HTTP/1.1
request, so the value the server compares is the one the handshake produced.
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from est_harness import Reply, RunningServer, basic, build_request, csr_body, parse_reply, read_all
from python_est import oids, wire
from python_est.app import build_server
from python_est.ca import certificate_pem, private_key_pem
from python_est.config import load_config
from python_est.state import open_state

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password"
POP_LABEL = "[label:pop]\nrequire_pop = yes\npassword_subjects = any\n"
PATH = "/.well-known/est/pop/simpleenroll"
PRINTABLE, UTF8 = _ASN1Type.PrintableString, _ASN1Type.UTF8String

Challenge = Callable[[bytes | None], str | None]


@dataclass(frozen=True)
class Exchange:
    reply: Reply
    tls_unique: bytes | None
    session: ssl.SSLSession | None
    resumed: bool
    version: str | None


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(POP_LABEL)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def tls12_context(cafile: Path, maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cafile))
    context.maximum_version = maximum
    return context


def linked_csr(
    challenge: str | None,
    tag: _ASN1Type = PRINTABLE,
    common_name: str = "device-1",
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if challenge is not None:
        builder = builder.add_attribute(oids.CHALLENGE_PASSWORD, challenge.encode(), _tag=tag)
    return builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())


def exchange(
    port: int,
    context: ssl.SSLContext,
    challenge: Challenge,
    *,
    tag: _ASN1Type = PRINTABLE,
    session: ssl.SSLSession | None = None,
    auth: bool = True,
    common_name: str = "device-1",
) -> Exchange:
    """One connection: handshake, read tls-unique, build the CSR from it, POST it, read."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
            unique = tls.get_channel_binding("tls-unique") if tls.version() != "TLSv1.3" else None
            csr = linked_csr(challenge(unique), tag, common_name)
            headers = {"Content-Type": "application/pkcs10"}
            if auth:
                headers["Authorization"] = basic(USER, PASSWORD)
            tls.sendall(build_request("POST", PATH, csr_body(csr), headers, port))
            reply = parse_reply(read_all(tls))
            return Exchange(reply, unique, tls.session, bool(tls.session_reused), tls.version())


def own(unique: bytes | None) -> str:
    assert unique is not None and len(unique) == 12
    return base64.b64encode(unique).decode("ascii")


def refused(reply: Reply, reason: str) -> None:
    assert reply.status == 400, reply.body
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert reason in reply.body.decode()


@pytest.mark.parametrize("tag", [PRINTABLE, UTF8], ids=["PrintableString", "UTF8String"])
def test_correct_tls_unique_is_accepted(server: RunningServer, tag: _ASN1Type) -> None:
    done = exchange(server.port, tls12_context(server.ca_file), own, tag=tag)
    assert done.version == "TLSv1.2"
    assert done.reply.status == 200, done.reply.body
    [cert] = done.reply.certificates()
    assert cert.subject.rfc4514_string() == "CN=device-1"


def test_wrong_value_is_refused_with_a_reason(server: RunningServer) -> None:
    done = exchange(server.port, tls12_context(server.ca_file), lambda u: "AAAAAAAAAAAAAAAA")
    refused(done.reply, "does not match this TLS session's tls-unique")


def test_missing_value_is_refused_with_a_reason(server: RunningServer) -> None:
    done = exchange(server.port, tls12_context(server.ca_file), lambda u: None)
    refused(done.reply, "requires proof-of-possession linking")


def test_value_from_another_connection_is_refused(server: RunningServer) -> None:
    context = tls12_context(server.ca_file)
    first = exchange(server.port, context, own)
    assert first.reply.status == 200
    stolen = own(first.tls_unique)
    second = exchange(server.port, context, lambda u: stolen)
    assert second.tls_unique != first.tls_unique
    refused(second.reply, "does not match")


def test_resumed_session_uses_the_server_finished(server: RunningServer) -> None:
    context = tls12_context(server.ca_file)
    full = exchange(server.port, context, own)
    assert full.reply.status == 200 and not full.resumed
    resumed = exchange(server.port, context, own, session=full.session)
    # RFC 5929 §3.1: after an abbreviated handshake tls-unique is the server's Finished.
    assert resumed.resumed
    assert resumed.tls_unique != full.tls_unique
    assert resumed.reply.status == 200, resumed.reply.body
    stale = exchange(server.port, context, lambda u: own(full.tls_unique), session=full.session)
    assert stale.resumed
    refused(stale.reply, "does not match")


def test_csrattrs_lists_challenge_password(server: RunningServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with tls12_context(server.ca_file).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(build_request("GET", "/.well-known/est/pop/csrattrs", port=server.port))
            reply = parse_reply(read_all(tls))
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "application/csrattrs"
    attrs = wire.decode_csrattrs(base64.b64decode(reply.body))
    assert oids.CHALLENGE_PASSWORD.dotted_string in attrs


def test_ra_client_is_exempt(server: RunningServer, tmp_path: Path) -> None:
    cert, key = server.state.ca.issue_client_certificate(
        common_name="registration-authority",
        extended_key_usage=(oids.ID_KP_CLIENT_AUTH, oids.ID_KP_CMC_RA),
    )
    (tmp_path / "ra.pem").write_bytes(certificate_pem(cert))
    (tmp_path / "ra.key").write_bytes(private_key_pem(key))
    context = tls12_context(server.ca_file)
    context.load_cert_chain(str(tmp_path / "ra.pem"), str(tmp_path / "ra.key"))
    done = exchange(server.port, context, lambda u: None, auth=False, common_name="device-77")
    assert done.reply.status == 200, done.reply.body
    [issued] = done.reply.certificates()
    assert issued.subject.rfc4514_string() == "CN=device-77"
    entry = server.state.ledger.get(issued.serial_number)
    assert entry is not None and entry.auth_method == "cert"


@contextmanager
def tls13_server(root: Path) -> Iterator[RunningServer]:
    """A server that offers TLS 1.3 (the shared fixture's base config pins [tls] otherwise)."""
    root.mkdir(parents=True)
    cfg = root / "est.cfg"
    cfg.write_text(
        "[server]\naddress = 127.0.0.1\nport = 0\nstate_dir = state\nhandshake_timeout = 5\n"
        "request_timeout = 5\n[ca]\nkey_type = ec-p256\n[tls]\nserver_key_type = rsa-2048\n"
        "max_version = 1.3\n" + POP_LABEL
    )
    config = load_config(cfg)
    state = open_state(config, create=True)
    assert state.users is not None
    state.users.add(USER, PASSWORD)
    server = build_server(config, state)
    thread = server.start_in_thread()
    try:
        yield RunningServer(server=server, config=config, state=state, root=root)
    finally:
        server.shutdown(grace=2.0)
        thread.join(timeout=5)
        state.ledger.close()


def test_tls13_connection_gets_a_clear_refusal(tmp_path: Path) -> None:
    with tls13_server(tmp_path / "tls13") as server:
        context = tls12_context(server.ca_file, maximum=ssl.TLSVersion.TLSv1_3)
        context.set_alpn_protocols(["http/1.1"])
        done = exchange(server.port, context, lambda u: "AAAAAAAAAAAAAAAA")
        assert done.version == "TLSv1.3"
        refused(done.reply, "needs TLS 1.2: tls-unique is undefined for TLS 1.3")
        # The same server still links TLS 1.2 clients.
        capped = exchange(server.port, tls12_context(server.ca_file), own)
        assert capped.version == "TLSv1.2" and capped.reply.status == 200
