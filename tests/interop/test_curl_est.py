"""Every EST operation driven by curl, with the results checked by the openssl CLI."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

PASSWORD = "curl-password-1"
CSRATTRS = (
    "challengePassword, id-ecPublicKey=secp384r1, extensionRequest=macAddress, ecdsa-with-SHA384"
)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=30, check=False)


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("curl")
    require_tool("openssl")
    running = start_est_server(f"[label:iot]\ncsrattrs = {CSRATTRS}\n")
    assert running.state.users is not None
    running.state.users.add("dev1", PASSWORD)
    return running


def curl(server: RunningServer, path: str, *extra: str) -> tuple[int, dict[str, str], bytes]:
    """Run curl and return (status, headers with their exact case, body)."""
    result = run(
        "curl", "-sS", "-D", "-", "--cacert", str(server.ca_file), *extra, server.url(path)
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def openssl_csr(tmp: Path, cn: str) -> tuple[Path, bytes]:
    key = tmp / f"{cn}.key"
    der = tmp / f"{cn}.csr.der"
    result = run(
        "openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-keyout", str(key), "-subj", f"/CN={cn}", "-outform", "DER", "-out", str(der),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return key, der.read_bytes()


def pkcs7_to_pem(tmp: Path, body: bytes, name: str) -> Path:
    p7 = tmp / f"{name}.p7"
    p7.write_bytes(base64.b64decode(body))
    out = tmp / f"{name}.pem"
    result = run(
        "openssl", "pkcs7", "-inform", "DER", "-in", str(p7), "-print_certs", "-out", str(out)
    )
    assert result.returncode == 0, result.stderr
    return out


def test_cacerts_and_enroll_verify_with_openssl(server: RunningServer, tmp_path: Path) -> None:
    status, headers, body = curl(server, "/.well-known/est/cacerts")
    assert status == 200 and headers["Content-Type"] == "application/pkcs7-mime"
    bundle = pkcs7_to_pem(tmp_path, body, "cacerts")
    assert b"BEGIN CERTIFICATE" in bundle.read_bytes()

    key, der = openssl_csr(tmp_path, "dev1")
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(der))  # 76-column lines
    status, headers, body = curl(
        server, "/.well-known/est/simpleenroll",
        "--user", f"dev1:{PASSWORD}", "-H", "Content-Type: application/pkcs10",
        "--data-binary", f"@{upload}",
    )  # fmt: skip
    assert status == 200, body
    assert headers["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    leaf = pkcs7_to_pem(tmp_path, body, "leaf")
    verify = run("openssl", "verify", "-CAfile", str(bundle), str(leaf))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # The issued certificate carries the key openssl generated.
    cert_key = run("openssl", "x509", "-in", str(leaf), "-pubkey", "-noout").stdout
    csr_key = run("openssl", "pkey", "-in", str(key), "-pubout").stdout
    assert cert_key == csr_key

    # Renew with the new certificate as the TLS client certificate.
    (tmp_path / "rekey").mkdir()
    _, der2 = openssl_csr(tmp_path / "rekey", "dev1")
    renew = tmp_path / "renew.b64"
    renew.write_bytes(base64.b64encode(der2))  # no line breaks
    status, _, body = curl(
        server, "/.well-known/est/simplereenroll",
        "--cert", str(leaf), "--key", str(key), "-H", "Content-Type: application/pkcs10",
        "--data-binary", f"@{renew}",
    )  # fmt: skip
    assert status == 200, body
    renewed = pkcs7_to_pem(tmp_path, body, "renewed")
    assert run("openssl", "verify", "-CAfile", str(bundle), str(renewed)).returncode == 0


def test_chunked_upload_with_ignored_transfer_encoding_header(
    server: RunningServer, tmp_path: Path
) -> None:
    _, der = openssl_csr(tmp_path, "dev1")
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(der).replace(b"\n", b"\r\n"))
    status, _, body = curl(
        server, "/.well-known/est/iot/simpleenroll",
        "--user", f"dev1:{PASSWORD}",
        "-H", "Content-Type: application/pkcs10",
        "-H", "Content-Transfer-Encoding: binary",  # RFC 8951 §3: ignored
        "-H", "Transfer-Encoding: chunked",
        "--data-binary", f"@{upload}",
    )  # fmt: skip
    assert status == 200, body
    leaf = pkcs7_to_pem(tmp_path, body, "leaf")
    text = run("openssl", "x509", "-in", str(leaf), "-noout", "-subject").stdout
    assert b"CN = dev1" in text


def test_srp_enroll_with_curl(server: RunningServer, tmp_path: Path) -> None:
    _, der = openssl_csr(tmp_path, "dev1")
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(der))
    result = run(
        "curl", "-sS", "-k", "--tlsauthtype", "SRP", "--tlsuser", "dev1", "--tlspassword", PASSWORD,
        "-H", "Content-Type: application/pkcs10", "--data-binary", f"@{upload}",
        "-o", str(tmp_path / "out.b64"), "-w", "%{http_code}",
        server.url("/.well-known/est/simpleenroll"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"200"
    pkcs7_to_pem(tmp_path, (tmp_path / "out.b64").read_bytes(), "srp-leaf")


def test_csrattrs_parse_with_openssl_asn1parse(server: RunningServer, tmp_path: Path) -> None:
    status, headers, body = curl(server, "/.well-known/est/iot/csrattrs")
    assert status == 200 and headers["Content-Type"] == "application/csrattrs"
    der = tmp_path / "attrs.der"
    der.write_bytes(base64.b64decode(body))
    parsed = run("openssl", "asn1parse", "-inform", "DER", "-in", str(der))
    assert parsed.returncode == 0, parsed.stderr
    text = parsed.stdout.decode()
    for name in (
        "challengePassword",
        "id-ecPublicKey",
        "secp384r1",
        "Extension Request",
        "ecdsa-with-SHA384",
    ):
        assert name in text


def test_errors_are_plain_text_with_exact_headers(server: RunningServer) -> None:
    status, headers, body = curl(
        server, "/.well-known/est/simpleenroll",
        "--user", f"dev1:{PASSWORD}", "-H", "Content-Type: text/plain", "--data-binary", "garbage",
    )  # fmt: skip
    assert status == 415
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Content-Length"] == str(len(body))
    status, headers, body = curl(
        server, "/.well-known/est/simpleenroll",
        "--user", f"dev1:{PASSWORD}", "-H", "Content-Type: application/pkcs10",
        "--data-binary", "not base64!!",
    )  # fmt: skip
    assert status == 400 and body.strip()
    status, headers, _ = curl(server, "/.well-known/est/simpleenroll")
    assert status == 405 and headers["Allow"] == "POST"
