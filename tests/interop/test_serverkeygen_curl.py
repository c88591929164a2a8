"""/serverkeygen driven by curl; the two parts checked by the openssl CLI (RFC 7030 §4.4.2)."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer
from python_est import wire
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "curl-device", "curl-password-7"


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, capture_output=True, timeout=30, check=False)


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("curl")
    require_tool("openssl")
    running = start_est_server("[label:p384]\ncsrattrs = id-ecPublicKey=secp384r1\n")
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def openssl(*args: str) -> bytes:
    result = run("openssl", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def serverkeygen(server: RunningServer, tmp: Path, path: str) -> tuple[str, bytes]:
    """POST an openssl-made CSR with curl; return the response Content-Type and body."""
    der = tmp / "request.csr.der"
    openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", str(tmp / "ignored.key"), "-subj", f"/CN={USER}", "-outform", "DER",
        "-out", str(der),
    )  # fmt: skip
    body = tmp / "request.b64"
    body.write_bytes(base64.encodebytes(der.read_bytes()))
    headers, out = tmp / "headers.txt", tmp / "body.bin"
    result = run(
        "curl", "-sS", "--cacert", str(server.ca_file), "--user", f"{USER}:{PASSWORD}",
        "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{body}",
        "-D", str(headers), "-o", str(out), server.url(path),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = headers.read_bytes().decode("latin-1").split("\r\n")
    assert lines[0].split()[1] == "200", out.read_bytes()
    fields = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return fields["Content-Type"], out.read_bytes()


@pytest.mark.parametrize(
    ("path", "algorithm"),
    [
        ("/.well-known/est/serverkeygen", "rsaEncryption"),
        ("/.well-known/est/p384/serverkeygen", "NIST CURVE: P-384"),
    ],
)
def test_key_part_matches_certificate_part(
    server: RunningServer, tmp_path: Path, path: str, algorithm: str
) -> None:
    content_type, body = serverkeygen(server, tmp_path, path)
    assert content_type.startswith("multipart/mixed; boundary=")
    parts = {
        headers["content-type"]: content
        for headers, content in wire.parse_multipart(content_type, body)
    }
    # The RFC's example spelling `multipart/mixed ; boundary=...` splits the same way.
    boundary = content_type.split("boundary=", 1)[1]
    assert len(wire.parse_multipart(f"multipart/mixed ; boundary={boundary}", body)) == 2

    key = tmp_path / "key.der"
    key.write_bytes(base64.b64decode(parts["application/pkcs8"]))
    p7 = tmp_path / "cert.p7"
    p7.write_bytes(base64.b64decode(parts["application/pkcs7-mime; smime-type=certs-only"]))
    cert = tmp_path / "cert.pem"
    openssl("pkcs7", "-inform", "DER", "-in", str(p7), "-print_certs", "-out", str(cert))

    key_pub = openssl("pkey", "-inform", "DER", "-in", str(key), "-pubout")
    cert_pub = openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    assert key_pub.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert key_pub == cert_pub
    assert algorithm in openssl("x509", "-in", str(cert), "-noout", "-text").decode()
    # The server made the key: it is not the one in the CSR.
    csr_pub = openssl("pkey", "-in", str(tmp_path / "ignored.key"), "-pubout")
    assert csr_pub != key_pub
    subject = openssl("x509", "-in", str(cert), "-noout", "-subject").decode()
    assert f"CN = {USER}" in subject
