"""The CA key on a PKCS#11 token (SoftHSM2), over real TLS with the product's server.

`python-est init --create-token-key` makes the key on the token and the CA certificate; the
server then enrolls, renews and revokes with every signature made on the token, for RSA and
P-256 CA keys, and openssl verifies what it signed. Every way the token setting can be wrong
stops start-up with one line naming the config file and the key.
"""

from __future__ import annotations

import os
import re
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from est_harness import (
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
    write_credentials,
)
from est_harness.config import TEST_CFG, merge_config, write_config
from est_harness.process import daemon, run_cli
from python_est import wire
from python_est.ca import certificates_pem, sign_ocsp_response
from python_est.config import load_config
from python_est.errors import CaError
from python_est.ledger import serial_hex
from python_est.state import open_state
from tests.conftest import run_openssl
from tests.integration.test_workers import wait_until_stopped
from tests.softhsm_support import SoftToken, new_label, soft_token

pytestmark = pytest.mark.integration

PASSWORD = "token ca password"
CRL_CFG = "[crl]\nbase_url = https://est.example.net:8443\nvalidity_hours = 24\n"


def token_config(root: Path, token: SoftToken, label: str, key_type: str) -> tuple[Path, str]:
    extra = token.config(label) + f"key_type = {key_type}\n" + CRL_CFG
    root.mkdir(parents=True, exist_ok=True)
    path = root / "est.cfg"
    path.write_text(merge_config(TEST_CFG, extra))
    return path, extra


@pytest.fixture(params=["rsa-3072", "ec-p256"])
def token_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    token = soft_token()
    root = tmp_path / "server"
    config, extra = token_config(root, token, new_label("ca"), request.param)
    made = run_cli(config, "init", "--create-token-key")
    assert made.returncode == 0, made.stderr
    assert "not extractable" in made.stdout
    with running_server(root, extra) as server:
        assert server.state.users is not None
        server.state.users.add("device-1", PASSWORD)
        yield server
        server.state.ca.close()


def enroll(server: RunningServer) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    csr, key = make_csr("device-1")
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic("device-1", PASSWORD)}
    raw = build_request(
        "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
    )
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = wire.decode_certs_only(reply.body)
    return cert, key


def reenroll(server: RunningServer, credentials: tuple[Path, Path]) -> tuple[int, bytes]:
    csr, _ = make_csr("device-1")
    headers = {"Content-Type": "application/pkcs10"}
    raw = build_request(
        "POST", "/.well-known/est/simplereenroll", csr_body(csr), headers, server.port
    )
    reply = https(server.port, raw, cafile=server.ca_file, client_cert=credentials)
    return reply.status, reply.body


def test_enroll_renew_and_revoke_with_the_ca_key_on_the_token(
    token_server: RunningServer, tmp_path: Path
) -> None:
    server = token_server
    ca = server.state.ca
    assert not hasattr(ca.key, "private_bytes")  # the key object is the token's, not a copy
    cacerts = https(
        server.port,
        build_request("GET", "/.well-known/est/cacerts", port=server.port),
        cafile=server.ca_file,
    )
    assert cacerts.status == 200
    chain_file = tmp_path / "cacerts.pem"
    chain_file.write_bytes(certificates_pem(wire.decode_certs_only(cacerts.body)))

    cert, key = enroll(server)
    leaf = tmp_path / "device.pem"
    leaf.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    verified = run_openssl("verify", "-CAfile", str(chain_file), str(leaf))
    assert verified.returncode == 0, verified.stdout + verified.stderr

    credentials = write_credentials(tmp_path, "device", cert, key)
    status, body = reenroll(server, credentials)
    assert status == 200, body
    [renewed] = wire.decode_certs_only(body)
    renewed.verify_directly_issued_by(ca.certificate)

    revoked = run_cli(
        server.root / "est.cfg",
        "certs",
        "revoke",
        serial_hex(cert.serial_number),
        "--reason",
        "keyCompromise",
    )
    assert revoked.returncode == 0, revoked.stderr
    status, body = reenroll(server, credentials)
    assert status == 403, body

    served = https(
        server.port, build_request("GET", "/crl/ca.crl", port=server.port), cafile=server.ca_file
    )
    assert served.status == 200
    crl = x509.load_der_x509_crl(served.body)
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    crl_file = tmp_path / "ca.crl"
    crl_file.write_bytes(served.body)
    crl_check = run_openssl(
        "crl", "-inform", "DER", "-in", str(crl_file), "-noout", "-CAfile", str(chain_file)
    )
    assert crl_check.returncode == 0 and "verify OK" in crl_check.stderr + crl_check.stdout
    pem_crl = tmp_path / "ca-crl.pem"
    pem_crl.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    with_crl = run_openssl(
        "verify", "-crl_check", "-CRLfile", str(pem_crl), "-CAfile", str(chain_file), str(leaf)
    )
    assert with_crl.returncode != 0
    assert "certificate revoked" in with_crl.stdout + with_crl.stderr

    # An OCSP response signed on the token (the one path ca/ocsp.py can route through).
    now = datetime.now(timezone.utc)
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=ca.certificate,
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.REVOKED,
        this_update=now,
        next_update=now + timedelta(hours=1),
        revocation_time=now,
        revocation_reason=x509.ReasonFlags.key_compromise,
    )
    response = sign_ocsp_response(builder, ca.certificate, ocsp.OCSPResponderEncoding.HASH, ca.key)
    response_file = tmp_path / "ocsp.der"
    response_file.write_bytes(response.public_bytes(serialization.Encoding.DER))
    issuer_file = tmp_path / "issuer.pem"
    issuer_file.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    checked = run_openssl(
        "ocsp",
        "-respin",
        str(response_file),
        "-CAfile",
        str(chain_file),
        "-issuer",
        str(issuer_file),
        "-cert",
        str(leaf),
        "-no_nonce",
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Response verify OK" in checked.stderr + checked.stdout
    assert f"{leaf}: revoked" in checked.stdout

    # /healthz signs a probe on the token and checks it against the CA certificate.
    health = https(
        server.port, build_request("GET", "/healthz", port=server.port), cafile=server.ca_file
    )
    assert health.status == 200, health.body

    # Nothing under the state directory holds the CA key.
    ca_dir = server.root / "state" / "ca"
    assert sorted(path.name for path in ca_dir.iterdir()) == ["ca.pem"]
    assert b"PRIVATE KEY" not in (ca_dir / "ca.pem").read_bytes()


def test_the_token_key_is_sensitive_and_never_extractable(token_server: RunningServer) -> None:
    import pkcs11
    from pkcs11 import Attribute, ObjectClass, exceptions

    cfg = token_server.config.ca.pkcs11
    assert cfg is not None
    token = pkcs11.lib(str(cfg.module.resolve())).get_token(token_label=cfg.token)
    # The running server's session has logged this process in (login is per application).
    with token.open() as session:
        key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=cfg.key_label)
        assert key[Attribute.SENSITIVE] and key[Attribute.ALWAYS_SENSITIVE]
        assert not key[Attribute.EXTRACTABLE] and key[Attribute.NEVER_EXTRACTABLE]
        secret = Attribute.PRIVATE_EXPONENT if key.key_type.name == "RSA" else Attribute.VALUE
        with pytest.raises(exceptions.AttributeSensitive):
            _ = key[secret]


WORKERS = "[server]\nworkers = 2\nshutdown_grace = 5\n[profile]\npassword_subjects = any\n"
WORKER_STARTED = r"worker (\d) started \(pid (\d+)\)"


def test_forked_workers_each_sign_on_the_token_and_reload(tmp_path: Path) -> None:
    token = soft_token()
    extra = token.config(new_label("workers")) + WORKERS
    config = write_config(tmp_path, extra, base=TEST_CFG)
    for args, stdin in [
        (("init", "--create-token-key"), ""),
        (("user", "add", "fleet", "--password-stdin"), PASSWORD + "\n"),
    ]:
        done = run_cli(config, *args, stdin=stdin, timeout=120)
        assert done.returncode == 0, done.stderr
    cafile = tmp_path / "state" / "ca" / "ca.pem"
    ca = x509.load_pem_x509_certificate(cafile.read_bytes())

    def enroll_as(name: str) -> x509.Certificate:
        csr, _ = make_csr(name)
        headers = {"Content-Type": "application/pkcs10", "Authorization": basic("fleet", PASSWORD)}
        raw = build_request(
            "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, running.port
        )
        reply = https(running.port, raw, cafile=cafile)
        assert reply.status == 200, reply.body
        [cert] = wire.decode_certs_only(reply.body)
        cert.verify_directly_issued_by(ca)
        return cert

    with daemon(tmp_path, extra, notify=False) as running:
        running.wait_for(WORKER_STARTED, count=2)
        with ThreadPoolExecutor(4) as pool:
            first = list(pool.map(lambda i: enroll_as(f"before-{i}"), range(12)))
        running.send(signal.SIGHUP)
        running.wait_for(r"reloaded the configuration from ", count=2)
        with ThreadPoolExecutor(4) as pool:
            second = list(pool.map(lambda i: enroll_as(f"after-{i}"), range(12)))
        assert len({cert.serial_number for cert in first + second}) == 24
        # Each forked worker signs on the token by itself: with the other stopped, a connection
        # can only go to it.
        workers = {int(i): int(pid) for i, pid in re.findall(WORKER_STARTED, running.log())}
        for index, pid in workers.items():
            other = workers[3 - index]
            served = rf"python_est\.server\[{pid}\]: 127\.0\.0\.1 .*simpleenroll"
            before = len(re.findall(served, running.log()))
            os.kill(other, signal.SIGSTOP)
            try:
                wait_until_stopped(other)
                enroll_as(f"alone-{index}")
            finally:
                os.kill(other, signal.SIGCONT)
            running.wait_for(served, count=before + 1)
        assert running.stop() == 0


def test_a_reload_shares_the_session_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    token = soft_token()
    config_path, _ = token_config(tmp_path, token, new_label("reload"), "ec-p256")
    assert run_cli(config_path, "init", "--create-token-key").returncode == 0
    config = load_config(config_path)
    running = open_state(config, create=False)
    reloaded = open_state(config, create=False, ledger=running.ledger)
    key = running.ca.key
    # No new session per reload: HSMs allow a bounded number of them.
    assert reloaded.ca.key is key
    running.ca.close()  # the old generation lets go; the new one still signs
    reloaded.ca.issue_client_certificate(common_name="after-reload")

    # The token goes away under the session (as when an HSM restarts): the next load opens a
    # new session instead of sharing the dead one, so a reload recovers.
    key._session.close()  # type: ignore[union-attr]
    with pytest.raises(CaError):
        reloaded.ca.issue_client_certificate(common_name="dead-session")
    recovered = open_state(config, create=False, ledger=reloaded.ledger)
    assert recovered.ca.key is not key
    recovered.ca.issue_client_certificate(common_name="recovered")
    recovered.ca.close()
    reloaded.ca.close()
    with pytest.raises(CaError):
        recovered.ca.issue_client_certificate(common_name="closed")
    reloaded.ledger.close()
