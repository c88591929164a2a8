"""The EST client (library and `python-est client ...`) against the real server over real TLS.

Every command (cacerts, csrattrs, enroll, reenroll, serverkeygen) and every authentication
method (TLS-SRP, HTTP Basic, client certificate), server verification, RFC 7030 §4.1.1
bootstrap of the trust anchor, and the 202 + Retry-After loop of manual approval.
"""

from __future__ import annotations

import logging
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from est_harness import RunningServer, running_server
from python_est.ca import CertificateAuthority, certificate_pem
from python_est.cli import main
from python_est.client import (
    CertificateFiles,
    ClientError,
    Credentials,
    EnrollmentPending,
    EstClient,
    HttpStatusError,
    Password,
    Trust,
    TrustError,
    build_csr,
    fingerprint,
    load_certificates,
    load_private_key,
    new_key,
    renewal_csr,
    verify_server_chain,
    write_certificates,
    write_private_key,
)
from python_est.keys import KeyType
from python_est.ledger import PendingStatus

pytestmark = pytest.mark.integration

Anchors = tuple[x509.Certificate, ...]

PASSWORD = "client test password"
CONFIG = """\
[label:attrs]
csrattrs = challengePassword, id-ecPublicKey=secp384r1
[label:manual]
approval = manual
[label:keygen]
serverkeygen_key_type = ec-p256
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("client"), CONFIG) as running:
        assert running.state.users is not None
        running.state.users.add(
            "alice", PASSWORD, allowed_names=["alice", "device-7", "dev.example"]
        )
        yield running


@pytest.fixture(scope="module")
def anchors(server: RunningServer) -> Anchors:
    return tuple(load_certificates(server.ca_file))


def client(server: RunningServer, anchors: Anchors, label: str = "", **creds: object) -> EstClient:
    return EstClient(
        "127.0.0.1",
        server.port,
        label=label,
        trust=Trust(anchors),
        credentials=Credentials(**creds),  # type: ignore[arg-type]
        timeout=10,
    )


def alice() -> Password:
    return Password("alice", PASSWORD)


def assert_issued_by(server: RunningServer, cert: x509.Certificate) -> None:
    cert.verify_directly_issued_by(server.state.ca.certificate)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def same_key(a: PublicKeyTypes, b: PublicKeyTypes) -> bool:
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


# --- trust ---------------------------------------------------------------------------------


def test_cacerts_with_the_explicit_anchor(server: RunningServer, anchors: Anchors) -> None:
    assert client(server, anchors).cacerts() == list(server.state.ca.chain)


def test_server_certificate_is_verified_by_default(server: RunningServer) -> None:
    # No anchors: the system store, which does not know the test CA.
    with pytest.raises(TrustError):
        EstClient("127.0.0.1", server.port, timeout=10).cacerts()
    other = CertificateAuthority.create(
        common_name="Other CA", key_type=KeyType.EC_P256, validity_days=1
    )
    with pytest.raises(TrustError):
        EstClient("127.0.0.1", server.port, trust=Trust((other.root,)), timeout=10).cacerts()


def test_srp_rsa_chain_check_covers_the_host_name(server: RunningServer, anchors: Anchors) -> None:
    chain = [c.public_bytes(serialization.Encoding.DER) for c in server.state.server.chain]
    verify_server_chain(chain, anchors, "127.0.0.1")
    verify_server_chain(chain, anchors, "localhost")
    with pytest.raises(TrustError):
        verify_server_chain(chain, anchors, "est.example.com")


# --- enroll, each way of authenticating ----------------------------------------------------


@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048])
def test_enroll_by_basic(server: RunningServer, anchors: Anchors, key_type: KeyType) -> None:
    key = new_key(key_type)
    cert = client(server, anchors, basic=alice()).simpleenroll(
        build_csr(key, common_name="device-7", dns_names=["dev.example"])
    )
    assert_issued_by(server, cert)
    assert same_key(cert.public_key(), key.public_key())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["dev.example"]
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.requester, entry.auth_method) == ("alice", "basic")


def test_enroll_by_srp_verifies_the_srp_rsa_certificate(
    server: RunningServer, anchors: Anchors
) -> None:
    srp = client(server, anchors, srp=alice())
    assert srp.request("GET", "/.well-known/est/cacerts").cipher_suite.startswith("TLS_SRP_SHA_RSA")
    cert = srp.simpleenroll(build_csr(new_key(KeyType.EC_P256), common_name="alice"))
    assert_issued_by(server, cert)
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.auth_method == "srp"
    # The certificate of an SRP-RSA server must verify too when anchors are given.
    other = CertificateAuthority.create(
        common_name="Other CA", key_type=KeyType.EC_P256, validity_days=1
    )
    with pytest.raises(TrustError):
        client(server, (other.root,), srp=alice()).cacerts()
    # Without anchors SRP alone authenticates the server (it proves knowledge of the verifier).
    assert client(server, (), srp=alice()).cacerts() == list(server.state.ca.chain)


def test_wrong_credentials_are_reported(server: RunningServer, anchors: Anchors) -> None:
    with pytest.raises(ClientError, match="wrong user name or password"):
        client(server, anchors, srp=Password("alice", "wrong")).cacerts()
    with pytest.raises(HttpStatusError) as info:
        client(server, anchors, basic=Password("bob", "wrong")).simpleenroll(
            build_csr(new_key(KeyType.EC_P256), common_name="bob")
        )
    assert info.value.status == 401
    assert "invalid user name or password" in str(info.value)


def test_enroll_by_certificate_then_reenroll(
    server: RunningServer, anchors: Anchors, tmp_path: Path
) -> None:
    key = new_key(KeyType.EC_P256)
    first = client(server, anchors, basic=alice()).simpleenroll(
        build_csr(key, common_name="device-7")
    )
    cert_file, key_file = tmp_path / "device.pem", tmp_path / "device.key"
    write_certificates(cert_file, [first])
    write_private_key(key_file, key)
    assert mode(key_file) == 0o600
    by_cert = client(server, anchors, client_cert=CertificateFiles(cert_file, key_file))
    # A certificate may enroll for its own identity...
    again = by_cert.simpleenroll(build_csr(new_key(KeyType.EC_P256), common_name="device-7"))
    assert server.state.ledger.get(again.serial_number).auth_method == "cert"  # type: ignore[union-attr]
    # ...renew with the same key...
    renewed = by_cert.simplereenroll(renewal_csr(key, first))
    assert renewed.subject == first.subject and renewed.serial_number != first.serial_number
    assert same_key(renewed.public_key(), key.public_key())
    # ...or with a new one (rekey).
    new = new_key(KeyType.RSA_2048)
    rekeyed = by_cert.simplereenroll(renewal_csr(new, first))
    assert same_key(rekeyed.public_key(), new.public_key())
    entry = server.state.ledger.get(rekeyed.serial_number)
    assert entry is not None and entry.operation == "simplereenroll"


def test_reenroll_without_a_client_certificate_is_refused(
    server: RunningServer, anchors: Anchors
) -> None:
    cert = client(server, anchors, basic=alice()).simpleenroll(
        build_csr(new_key(KeyType.EC_P256), common_name="alice")
    )
    with pytest.raises(HttpStatusError) as info:
        client(server, anchors, basic=alice()).simplereenroll(
            renewal_csr(new_key(KeyType.EC_P256), cert)
        )
    assert info.value.status == 403


# --- csrattrs, serverkeygen ---------------------------------------------------------------


def test_csrattrs(server: RunningServer, anchors: Anchors) -> None:
    assert client(server, anchors).csrattrs() == ()
    attrs = client(server, anchors, label="attrs").csrattrs()
    oids = [item if isinstance(item, str) else item.oid for item in attrs]
    assert oids == ["1.2.840.113549.1.9.7", "1.2.840.10045.2.1"]


def test_serverkeygen_returns_a_matching_key(server: RunningServer, anchors: Anchors) -> None:
    result = client(server, anchors, label="keygen", srp=alice()).serverkeygen(
        build_csr(new_key(KeyType.EC_P256), common_name="alice")
    )
    assert_issued_by(server, result.certificate)
    assert same_key(result.private_key.public_key(), result.certificate.public_key())
    entry = server.state.ledger.get(result.certificate.serial_number)
    assert entry is not None and entry.server_generated_key


# --- 202 + Retry-After ---------------------------------------------------------------------


def test_pending_request_is_retried_until_approved(server: RunningServer, anchors: Anchors) -> None:
    ledger = server.state.ledger
    waits: list[float] = []

    def operator_approves_while_client_sleeps(seconds: float) -> None:
        waits.append(seconds)
        (pending,) = [
            r for r in ledger.list_pending(PendingStatus.PENDING) if r.subject == "CN=device-7"
        ]
        ledger.decide_pending(pending.id, approve=True)

    est = EstClient(
        "127.0.0.1",
        server.port,
        label="manual",
        trust=Trust(anchors),
        credentials=Credentials(basic=alice()),
        timeout=10,
        sleep=operator_approves_while_client_sleeps,
    )
    key = new_key(KeyType.EC_P256)
    cert = est.simpleenroll(build_csr(key, common_name="device-7"), max_wait=3600)
    assert waits == [60]  # the server's Retry-After
    assert_issued_by(server, cert)
    assert same_key(cert.public_key(), key.public_key())


def test_pending_request_gives_up_after_max_wait(server: RunningServer, anchors: Anchors) -> None:
    est = client(server, anchors, label="manual", basic=alice())
    with pytest.raises(EnrollmentPending) as info:
        est.simpleenroll(build_csr(new_key(KeyType.EC_P256), common_name="alice"), max_wait=10)
    assert info.value.retry_after == 60


# --- the command line ----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    # main() sets up the python_est logger for a command-line run; undo it for the next tests.
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def cli(server: RunningServer, *args: str) -> int:
    return main(["client", args[0], "--server", "127.0.0.1", "--port", str(server.port), *args[1:]])


def test_cli_cacerts_bootstrap_needs_the_fingerprint(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ca.pem"
    root_fp = fingerprint(server.state.ca.root)
    # RFC 7030 §4.1.1: fetched without verification, shown, not stored.
    assert cli(server, "cacerts", "--out", str(out)) == 1
    assert root_fp in capsys.readouterr().err
    assert not out.exists()
    wrong = "00" * 32
    assert cli(server, "cacerts", "--out", str(out), "--accept-fingerprint", wrong) == 1
    assert "no root certificate has that fingerprint" in capsys.readouterr().err
    assert not out.exists()
    accepted = root_fp.replace(":", "").lower()  # any spelling of the same digits
    assert cli(server, "cacerts", "--out", str(out), "--accept-fingerprint", accepted) == 0
    assert load_certificates(out) == list(server.state.ca.chain)
    assert f"wrote 1 certificate(s) to {out}" in capsys.readouterr().out
    # The stored file is now the explicit trust anchor.
    assert cli(server, "cacerts", "--cacert", str(out)) == 0
    assert capsys.readouterr().out == certificate_pem(server.state.ca.root).decode()


def test_cli_enroll_by_srp_writes_a_private_key_file(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_out, cert_out = tmp_path / "k.pem", tmp_path / "c.pem"
    status = cli(
        server, "enroll", "--cacert", str(server.ca_file), "--srp", "--user", "alice",
        "--password", PASSWORD, "--common-name", "device-7", "--key-type", "rsa",
        "--key-out", str(key_out), "--cert-out", str(cert_out),
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert mode(key_out) == 0o600
    key = load_private_key(key_out)
    cert = load_certificates(cert_out)[0]
    assert_issued_by(server, cert)
    assert same_key(cert.public_key(), key.public_key())
    assert key.key_size == 2048


def test_cli_enroll_with_a_csr_file_and_basic_from_a_password_file(
    server: RunningServer, tmp_path: Path
) -> None:
    key = new_key(KeyType.EC_P384)
    csr_file = tmp_path / "req.der"
    csr_file.write_bytes(
        build_csr(key, common_name="alice").public_bytes(serialization.Encoding.DER)
    )
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    cert_out = tmp_path / "alice.pem"
    status = cli(
        server, "enroll", "--cacert", str(server.ca_file), "--user", "alice",
        "--password-file", str(password_file), "--csr", str(csr_file), "--cert-out", str(cert_out),
    )  # fmt: skip
    assert status == 0
    cert = load_certificates(cert_out)[0]
    assert same_key(cert.public_key(), key.public_key())


def test_cli_reenroll_rekey_and_serverkeygen(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = str(server.ca_file)
    key_file, cert_file = tmp_path / "sk.key", tmp_path / "sk.pem"
    status = cli(
        server, "serverkeygen", "--label", "keygen", "--cacert", ca, "--user", "alice",
        "--password", PASSWORD, "--common-name", "alice", "--key-out", str(key_file),
        "--cert-out", str(cert_file),
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert mode(key_file) == 0o600
    first = load_certificates(cert_file)[0]
    assert same_key(load_private_key(key_file).public_key(), first.public_key())

    # On the label that issued it: reenrollment stays on its label (issue 13).
    status = cli(
        server, "reenroll", "--label", "keygen", "--cacert", ca, "--cert", str(cert_file),
        "--key", str(key_file), "--rekey",
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    renewed = load_certificates(cert_file)[0]
    assert renewed.serial_number != first.serial_number
    assert renewed.subject == first.subject
    assert mode(key_file) == 0o600
    assert same_key(load_private_key(key_file).public_key(), renewed.public_key())
    assert not same_key(renewed.public_key(), first.public_key())


def test_cli_csrattrs_and_pending_exit_status(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca = str(server.ca_file)
    assert cli(server, "csrattrs", "--cacert", ca, "--label", "attrs") == 0
    assert "1.2.840.113549.1.9.7" in capsys.readouterr().out
    status = cli(
        server, "enroll", "--label", "manual", "--cacert", ca, "--user", "alice", "--password",
        PASSWORD, "--common-name", "alice", "--key-out", str(tmp_path / "p.key"),
        "--max-wait", "0",
    )  # fmt: skip
    assert status == 75
    assert "waiting for approval" in capsys.readouterr().err
    assert mode(tmp_path / "p.key") == 0o600  # kept, to send the same request again


def test_cli_usage_errors_exit_1(server: RunningServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(server, "enroll", "--cacert", str(server.ca_file), "--user", "alice",
               "--password", PASSWORD) == 1  # fmt: skip
    assert "--common-name is required" in capsys.readouterr().err
    assert cli(server, "reenroll", "--cacert", str(server.ca_file)) == 1
    assert "needs --cert and --key" in capsys.readouterr().err


# --- the client never destroys a key (issue 15 item 5) --------------------------------------


def enroll_args(server: RunningServer, password: str, *extra: str) -> list[str]:
    return [
        "enroll", "--cacert", str(server.ca_file), "--user", "alice", "--password", password,
        "--common-name", "alice", *extra,
    ]  # fmt: skip


def test_cli_enroll_with_a_wrong_password_writes_nothing(
    server: RunningServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(server, *enroll_args(server, "wrong password")) == 1
    assert "python-est client:" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []


def test_cli_enroll_refuses_to_replace_a_key_before_contacting_the_server(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file, cert_file = tmp_path / "alice.key", tmp_path / "alice.pem"
    write_private_key(key_file, new_key(KeyType.EC_P256))
    before = key_file.read_bytes()
    with socket.socket() as unused:  # a port nobody listens on: "the server is down"
        unused.bind(("127.0.0.1", 0))
        down = unused.getsockname()[1]
    args = enroll_args(server, PASSWORD, "--key-out", str(key_file), "--cert-out", str(cert_file))
    assert main(["client", *args[:1], "--port", str(down), *args[1:]]) == 1
    err = capsys.readouterr().err
    assert f"{key_file} exists" in err and f"--key {key_file}" in err and "nothing was sent" in err
    assert key_file.read_bytes() == before and not cert_file.exists()
    # A wrong password with --force: the server refuses, and the old key is still there.
    assert cli(server, *enroll_args(server, "wrong", "--key-out", str(key_file), "--force")) == 1
    assert key_file.read_bytes() == before and not cert_file.exists()


def test_cli_enroll_reuses_an_existing_key_with_key(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file, cert_file = tmp_path / "alice.key", tmp_path / "alice.pem"
    key = new_key(KeyType.EC_P256)
    write_private_key(key_file, key)
    before = key_file.read_bytes()
    args = enroll_args(server, PASSWORD, "--key", str(key_file), "--cert-out", str(cert_file))
    assert cli(server, *args) == 0, capsys.readouterr().err
    assert key_file.read_bytes() == before
    assert same_key(load_certificates(cert_file)[0].public_key(), key.public_key())
    # The certificate now exists: a second run refuses to replace it without --force.
    assert cli(server, *args) == 1
    assert f"{cert_file} exists" in capsys.readouterr().err
    assert cli(server, *args, "--force") == 0
    assert key_file.read_bytes() == before
