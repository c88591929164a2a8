"""The served CRL checked by the openssl CLI, fetched by curl; with and without an issuing CA.

`openssl crl -verify` accepts its signature; `openssl verify -crl_check` refuses the revoked
certificate ("certificate revoked") and accepts the other; `openssl x509` shows the CRL
Distribution Point of issued certificates.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_harness import RunningServer, basic, build_request, csr_body, https, make_csr
from python_est import wire
from python_est.ca import certificate_pem
from python_est.ledger import serial_hex
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

PASSWORD = "openssl crl password"
BASE_URL = "https://est.example.net:8443"
REPO = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def enroll(server: RunningServer, tmp: Path, cn: str) -> tuple[x509.Certificate, Path]:
    csr, _ = make_csr(cn)
    request = build_request(
        "POST",
        "/.well-known/est/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10", "Authorization": basic("ops", PASSWORD)},
        server.port,
    )
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = wire.decode_certs_only(reply.body)
    path = tmp / f"{cn}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, path


@pytest.mark.parametrize("issuing_ca", ["no", "yes"])
def test_openssl_verifies_the_crl_and_refuses_the_revoked_certificate(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path, issuing_ca: str
) -> None:
    require_tool("openssl")
    require_tool("curl")
    server = start_est_server(
        f"[ca]\nissuing_ca = {issuing_ca}\n[crl]\nbase_url = {BASE_URL}\n"
        "[profile]\npassword_subjects = any\n"
    )
    assert server.state.users is not None
    server.state.users.add("ops", PASSWORD)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(certificate_pem(cert) for cert in server.state.ca.chain))
    revoked, revoked_pem = enroll(server, tmp_path, "revoked-device")
    _, good_pem = enroll(server, tmp_path, "good-device")

    shown = run("openssl", "x509", "-in", str(good_pem), "-noout", "-ext", "crlDistributionPoints")
    assert shown.returncode == 0, shown.stderr
    assert f"URI:{BASE_URL}/crl/ca.crl" in shown.stdout

    result = subprocess.run(
        [sys.executable, "-m", "python_est", "-c", str(server.root / "est.cfg"), "certs",
         "revoke", serial_hex(revoked.serial_number), "--reason", "keyCompromise"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr

    der = tmp_path / "ca.crl"
    fetched = run(
        "curl", "-sS", "--fail", "--cacert", str(server.ca_file), "-o", str(der),
        server.url("/crl/ca.crl"),
    )  # fmt: skip
    assert fetched.returncode == 0, fetched.stderr

    verified = run(
        "openssl", "crl", "-inform", "DER", "-in", str(der), "-CAfile", str(chain), "-noout",
        "-verify",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert "verify OK" in verified.stdout + verified.stderr
    text = run("openssl", "crl", "-inform", "DER", "-in", str(der), "-noout", "-text")
    assert f"Serial Number: {revoked.serial_number:X}" in text.stdout
    assert "Key Compromise" in text.stdout

    pem = tmp_path / "ca.crl.pem"
    converted = run(
        "openssl", "crl", "-inform", "DER", "-in", str(der), "-outform", "PEM", "-out", str(pem)
    )
    assert converted.returncode == 0, converted.stderr
    refused = run(
        "openssl", "verify", "-crl_check", "-CAfile", str(chain), "-CRLfile", str(pem),
        str(revoked_pem),
    )  # fmt: skip
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = run(
        "openssl", "verify", "-crl_check", "-CAfile", str(chain), "-CRLfile", str(pem),
        str(good_pem),
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert f"{good_pem}: OK" in accepted.stdout
