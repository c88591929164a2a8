"""RFC 9908 prescribed values with third-party tools: curl fetches the template and openssl
parses it; a CSR made by `openssl req` that follows the template is issued, one that deviates
from a prescribed value is refused with the reason."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "dev1", "openssl-template-1"
CONFIG = """\
[label:tpl]
enforce_csrattrs = yes
password_subjects = any
csrattrs = id-ecPublicKey=secp256r1
csrattrs_subject = CN=*, OU=myDept, OU=myGroup
csrattrs_extensions = subjectAltName = dns:www.myServer.com, ip:*; \
keyUsage = critical, digitalSignature, keyAgreement; extKeyUsage = *
"""
FOLLOWS = (
    "-subj", "/CN=dev1/OU=myDept/OU=myGroup",
    "-addext", "subjectAltName=DNS:www.myServer.com,IP:192.0.2.7",
    "-addext", "keyUsage=critical,digitalSignature,keyAgreement",
    "-addext", "extendedKeyUsage=clientAuth",
)  # fmt: skip


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=30, check=False)


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("curl")
    require_tool("openssl")
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def curl(server: RunningServer, path: str, *extra: str) -> tuple[int, bytes]:
    result = run("curl", "-sS", "-w", "\n%{http_code}", "--cacert", str(server.ca_file), *extra,
                 server.url(path))  # fmt: skip
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition(b"\n")
    return int(status), body


def test_openssl_parses_the_served_template(server: RunningServer, tmp_path: Path) -> None:
    status, body = curl(server, "/.well-known/est/tpl/csrattrs")
    assert status == 200
    der = tmp_path / "attrs.der"
    der.write_bytes(base64.b64decode(body))
    parsed = run("openssl", "asn1parse", "-inform", "DER", "-in", str(der))
    assert parsed.returncode == 0, parsed.stderr
    text = parsed.stdout.decode()
    for expected in (
        "id-ecPublicKey",
        "prime256v1",
        "Extension Request",
        "1.2.840.113549.1.9.16.2.61",  # the template attribute (OpenSSL has no name for it)
        "myDept",
        "myGroup",
    ):
        assert expected in text


def enroll_openssl_csr(server: RunningServer, tmp_path: Path, *req: str) -> tuple[int, bytes]:
    der = tmp_path / "req.der"
    made = run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(tmp_path / "req.key"), "-outform", "DER", "-out", str(der), *req,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    upload = tmp_path / "req.b64"
    upload.write_bytes(base64.encodebytes(der.read_bytes()))
    return curl(
        server, "/.well-known/est/tpl/simpleenroll", "--user", f"{USER}:{PASSWORD}",
        "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{upload}",
    )  # fmt: skip


def test_an_openssl_csr_that_follows_the_template_is_issued(
    server: RunningServer, tmp_path: Path
) -> None:
    status, body = enroll_openssl_csr(server, tmp_path, *FOLLOWS)
    assert status == 200, body
    p7 = tmp_path / "cert.p7"
    p7.write_bytes(base64.b64decode(body))
    shown = run("openssl", "pkcs7", "-inform", "DER", "-in", str(p7), "-print_certs", "-text")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "Digital Signature, Key Agreement" in text and "OU=myDept" in text


def test_an_openssl_csr_with_other_key_usage_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    deviating = [a.replace("digitalSignature,keyAgreement", "keyEncipherment") for a in FOLLOWS]
    status, body = enroll_openssl_csr(server, tmp_path, *deviating)
    assert status == 400
    assert b"keyUsage must carry exactly the value /csrattrs prescribes" in body
