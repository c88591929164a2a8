"""Encrypted /serverkeygen keys (RFC 7030 §4.4.1.1, §4.4.1.2, §4.4.2) over real TLS: the three
recipient kinds opened by our client code, `python-est kek` and `client serverkeygen`, and what a
requester holding a valid low-privilege credential might try."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import NameOID

from est_harness import RunningServer
from est_harness.process import run_cli
from python_est import oids
from python_est.client import KeyOpener
from python_est.keks import KekStore
from python_est.statedir import StateDir
from python_est.wire.envelope import AES_CBC, ECDH_SCHEMES
from python_est.wire.keyrequest import KeyProtection, capability_list
from tests.conftest import captured_records
from tests.keygen_support import (
    LABELS,
    PASSWORDS,
    SERVER_GENERATED_KEY,
    enroll_device,
    new_device_key,
    parts,
    post,
    request_csr,
    ski,
    spki,
    to_cert,
    to_kek,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(LABELS)
    assert running.state.users is not None
    for user, password in PASSWORDS.items():
        running.state.users.add(user, password)
    return running


def keks(server: RunningServer) -> KekStore:
    return KekStore(StateDir(server.config.server.state_dir).keks)


def trust(server: RunningServer) -> list[x509.Certificate]:
    return [server.state.ca.root]


def opened_key(opener: KeyOpener, der: bytes) -> object:
    return serialization.load_der_private_key(opener.open(der), None)


@pytest.mark.parametrize(("kind", "label"), [("rsa", ""), ("ec", "kari")])
def test_key_encrypted_to_the_client_certificate(
    server: RunningServer, tmp_path: Path, kind: str, label: str
) -> None:
    cert, key, files = enroll_device(server, tmp_path, "alice", kind, label)
    opener = KeyOpener.to_certificate(cert, key, trust(server))
    reply = post(
        server,
        "serverkeygen",
        request_csr("alice", to_cert(cert)),
        label=label,
        client_cert=files,
    )
    content_type, der, issued = parts(reply)
    assert content_type == SERVER_GENERATED_KEY
    assert b"PRIVATE KEY" not in reply.body
    generated = opened_key(opener, der)
    assert isinstance(generated, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(generated.public_key()) == spki(issued.public_key())
    # Nobody else opens it: another key of the same type fails.
    with pytest.raises(ValueError):
        KeyOpener.to_certificate(cert, new_device_key(kind), trust(server)).open(der)


def test_key_encrypted_to_a_certificate_the_requester_enrolled(
    server: RunningServer, tmp_path: Path
) -> None:
    # Enrolled earlier by password; now HTTP Basic only, no certificate on the connection.
    cert, key, _ = enroll_device(server, tmp_path, "alice", "rsa")
    reply = post(server, "serverkeygen", request_csr("alice", to_cert(cert)))
    content_type, der, issued = parts(reply)
    assert content_type == SERVER_GENERATED_KEY
    generated = opened_key(KeyOpener.to_certificate(cert, key, trust(server)), der)
    assert isinstance(generated, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(generated.public_key()) == spki(issued.public_key())
    # Bob, authorized for his own name only, cannot name alice's certificate: his request is
    # for CN=bob, and alice's certificate is neither his nor of that subject.
    refused = post(server, "serverkeygen", request_csr("bob", to_cert(cert)), user="bob")
    assert refused.status == 400 and b"names neither" in refused.body


def test_key_wrapped_with_a_registered_kek(server: RunningServer) -> None:
    kek = os.urandom(32)
    keks(server).add("", "fleet-1", kek)
    with captured_records("python_est", logging.DEBUG) as records:
        reply = post(server, "serverkeygen", request_csr("alice", to_kek("fleet-1")))
    logged = "\n".join(record.getMessage() for record in records)
    assert "serverkeygen" in logged  # the request was logged, the key-encryption key was not
    assert kek.hex() not in logged.lower() and kek.hex() not in reply.body.decode()
    content_type, der, issued = parts(reply)
    assert content_type == SERVER_GENERATED_KEY
    generated = opened_key(KeyOpener.to_kek("fleet-1", kek, trust(server)), der)
    assert isinstance(generated, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(generated.public_key()) == spki(issued.public_key())
    # A wrong KEK under the same id does not open it.
    with pytest.raises(ValueError):
        KeyOpener.to_kek("fleet-1", os.urandom(32), trust(server)).open(der)


def test_refusals_issue_nothing_and_return_no_key(server: RunningServer, tmp_path: Path) -> None:
    alice, _, alice_files = enroll_device(server, tmp_path, "alice", "rsa")
    bob, _, _ = enroll_device(server, tmp_path, "bob", "rsa")
    ec_cert, _, ec_files = enroll_device(server, tmp_path, "alice", "ec")  # no keyAgreement
    elsewhere, _, _ = enroll_device(server, tmp_path, "alice", "rsa", "other")
    revoked, _, _ = enroll_device(server, tmp_path, "alice", "rsa")
    server.state.ledger.revoke(revoked.serial_number, "keyCompromise")
    keks(server).add("other", "other-kek", os.urandom(32))
    keks(server).add("", "small", os.urandom(16))
    before = server.state.ledger.count()
    unknown = "names neither the TLS client certificate"
    cases = [
        # Someone else's certificate as the target: alice holds no key for it, with or without
        # her own certificate on the connection.
        (to_cert(bob), alice_files, unknown),
        (to_cert(bob), None, unknown),
        # Her own certificates, but one of another label and one revoked.
        (to_cert(elsewhere), None, unknown),
        (to_cert(revoked), alice_files, unknown),
        # An EC certificate without keyAgreement may not receive a key (§4.4.1.2).
        (to_cert(ec_cert), ec_files, "lacks keyAgreement"),
        # PKCS#1 v1.5 only: the issue allows RSAES-OAEP alone.
        (
            to_cert(alice, capability_list(["1.2.840.113549.1.1.1", AES_CBC[32]])),
            alice_files,
            "RSAES-OAEP",
        ),
        (to_cert(alice, ()), alice_files, "must carry SMIMECapabilities"),
        (to_kek("nobody"), None, "names no key-encryption key"),
        # A KEK registered for another label is unknown here.
        (to_kek("other-kek"), None, "names no key-encryption key"),
        # The capabilities must list the wrap of the KEK's size.
        (to_kek("small", 256), None, "list 2.16.840.1.101.3.4.1.5"),
        (
            KeyProtection(b"fleet", None, capability_list([next(iter(ECDH_SCHEMES))])),
            None,
            "names no key-encryption key",
        ),
    ]
    for protection, files, reason in cases:
        reply = post(server, "serverkeygen", request_csr("alice", protection), client_cert=files)
        assert reply.status == 400, (reason, reply.body)
        assert reason.encode() in reply.body, (reason, reply.body)
        assert b"pkcs8" not in reply.body and b"PRIVATE" not in reply.body
    assert server.state.ledger.count() == before


def test_both_identifiers_refused(server: RunningServer) -> None:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    )
    for oid in (oids.DECRYPT_KEY_IDENTIFIER, oids.ASYMMETRIC_DECRYPT_KEY_IDENTIFIER):
        builder = builder.add_attribute(oid, b"\x01\x02", _tag=_ASN1Type.OctetString)
    csr = builder.sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    before = server.state.ledger.count()
    reply = post(server, "serverkeygen", csr)
    assert reply.status == 400 and b"both" in reply.body
    assert server.state.ledger.count() == before


def test_kek_commands(server: RunningServer, tmp_path: Path) -> None:
    cfg = server.root / "est.cfg"
    key_hex = os.urandom(24).hex()
    added = run_cli(cfg, "kek", "add", "line-7", "--label", "kari", stdin=key_hex + "\n")
    assert added.returncode == 0, added.stderr
    assert "added 192-bit KEK 'line-7' on label 'kari'" in added.stdout
    path = keks(server).path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = run_cli(cfg, "kek", "add", "line-7", "--label", "kari", stdin=key_hex)
    assert again.returncode == 1 and "--replace" in again.stderr
    listing = run_cli(cfg, "kek", "list")
    assert "id=line-7 bits=192" in listing.stdout and key_hex not in listing.stdout
    for bad, problem in (("abcd", "128, 192 or 256 bits"), ("zz" * 16, "hex")):
        refused = run_cli(cfg, "kek", "add", "k2", stdin=bad)
        assert refused.returncode == 1 and problem in refused.stderr
    missing = run_cli(cfg, "kek", "add", "k3", "--file", str(tmp_path / "absent"))
    assert missing.returncode == 1 and "absent" in missing.stderr
    unknown = run_cli(cfg, "kek", "add", "k4", "--label", "nolabel", stdin=key_hex)
    assert unknown.returncode == 1 and "unknown CA label" in unknown.stderr
    # Registered by the command, used by the running server without a reload.
    reply = post(server, "serverkeygen", request_csr("alice", to_kek("line-7", 192)), label="kari")
    _, der, issued = parts(reply)
    generated = opened_key(KeyOpener.to_kek("line-7", bytes.fromhex(key_hex), trust(server)), der)
    assert isinstance(generated, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(generated.public_key()) == spki(issued.public_key())
    removed = run_cli(cfg, "kek", "remove", "line-7", "--label", "kari")
    assert removed.returncode == 0, removed.stderr
    gone = post(server, "serverkeygen", request_csr("alice", to_kek("line-7", 192)), label="kari")
    assert gone.status == 400
    assert run_cli(cfg, "kek", "remove", "line-7", "--label", "kari").returncode == 1


@pytest.mark.parametrize("mode", ["cert", "held", "kek"])
def test_client_command(server: RunningServer, tmp_path: Path, mode: str) -> None:
    cfg = server.root / "est.cfg"
    common = ["--server", "127.0.0.1", "--port", str(server.port), "--cacert", str(server.ca_file)]
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORDS["alice"])
    auth = ["--user", "alice", "--password-file", str(password_file)]
    if mode == "cert":
        cert, _, (cert_file, key_file) = enroll_device(server, tmp_path, "alice", "rsa")
        extra = ["--cert", str(cert_file), "--key", str(key_file), "--encrypt-to", str(cert_file)]
    elif mode == "held":  # a certificate alice enrolled earlier; none on this connection
        cert, _, (cert_file, key_file) = enroll_device(server, tmp_path, "alice", "rsa")
        extra = ["--encrypt-to", str(cert_file), "--encrypt-key", str(key_file)]
    else:
        kek_file = tmp_path / "kek.hex"
        kek_file.write_text(os.urandom(32).hex())
        keks(server).add("", "fleet", bytes.fromhex(kek_file.read_text()))
        extra = ["--kek", "fleet", "--kek-file", str(kek_file)]
    key_out, cert_out = tmp_path / f"{mode}.key", tmp_path / f"{mode}.pem"
    done = run_cli(
        cfg,
        "client",
        "serverkeygen",
        *common,
        *auth,
        "--common-name",
        "alice",
        *extra,
        "--key-out",
        str(key_out),
        "--cert-out",
        str(cert_out),
    )
    assert done.returncode == 0, done.stderr
    key = serialization.load_pem_private_key(key_out.read_bytes(), None)
    issued = x509.load_pem_x509_certificate(cert_out.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(key.public_key()) == spki(issued.public_key())
    if mode != "kek":
        assert ski(cert) != ski(issued)


def test_plaintext_request_unchanged(server: RunningServer) -> None:
    content_type, der, issued = parts(post(server, "serverkeygen", request_csr("alice")))
    assert content_type == "application/pkcs8"
    key = serialization.load_der_private_key(der, None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    assert spki(key.public_key()) == spki(issued.public_key())


def test_client_command_refuses_before_contacting_the_server(
    server: RunningServer, tmp_path: Path
) -> None:
    cfg = server.root / "est.cfg"
    _, _, (cert_file, _) = enroll_device(server, tmp_path, "alice", "rsa")
    _, _, (_, other_key) = enroll_device(server, tmp_path, "bob", "rsa")
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORDS["alice"])
    common = [
        "client", "serverkeygen", "--port", str(server.port), "--cacert", str(server.ca_file),
        "--user", "alice", "--password-file", str(password_file), "--common-name", "alice",
        "--key-out", str(tmp_path / "k"), "--cert-out", str(tmp_path / "c"),
    ]  # fmt: skip
    before = server.state.ledger.count()
    for extra, problem in (
        (["--encrypt-to", str(cert_file), "--encrypt-key", str(other_key)], str(other_key)),
        (["--encrypt-to", str(cert_file)], "--encrypt-key"),
        (["--kek", "fleet"], "--kek-file"),
        (["--kek", "bad id"], "KEK id"),
    ):
        done = run_cli(cfg, *common, *extra)
        assert done.returncode != 0 and problem in done.stderr, (extra, done.stderr)
    assert server.state.ledger.count() == before
    assert not (tmp_path / "k").exists()
