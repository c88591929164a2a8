"""The bootstrap page driven by curl: a TLS-SRP connection (the SRP identity counts, no password
in the form) with a multipart file upload, and an urlencoded form with awkward characters."""

from __future__ import annotations

import html
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_harness import RunningServer, running_server
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

# Everything the ancestor's parser mangled: '+', '%2B', '=', '&' and UTF-8.
PASSWORD = "p+w%2B=&\u00e4\u20ac"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_tool("curl")
    with running_server(tmp_path_factory.mktemp("curl-bootstrap")) as running:
        assert running.state.users is not None
        running.state.users.add("alice", PASSWORD)
        yield running


def csr_file(
    tmp_path: Path, encoding: serialization.Encoding
) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    path = tmp_path / ("req.der" if encoding is serialization.Encoding.DER else "req.pem")
    path.write_bytes(csr.public_bytes(encoding))
    return path, key


def curl(server: RunningServer, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args, server.url("/bootstrap")],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.decode("utf-8").rpartition("\n")
    return int(status), body


def shown_certificate(body: str) -> x509.Certificate:
    match = re.search(r'<pre id="certificate-pem">(.*?)</pre>', body, re.S)
    assert match is not None, body[:2000]
    return x509.load_pem_x509_certificate(html.unescape(match.group(1)).encode("ascii"))


def test_srp_connection_uploads_a_der_csr_without_a_password(
    server: RunningServer, tmp_path: Path
) -> None:
    path, key = csr_file(tmp_path, serialization.Encoding.DER)
    srp = ["--tlsauthtype", "SRP", "--tlsuser", "alice", "--tlspassword", PASSWORD]
    # SRP-RSA: curl verifies the server certificate as well.
    srp += ["--ciphers", "SRP-RSA-AES-256-CBC-SHA", "--cacert", str(server.ca_file)]
    status, body = curl(server, *srp)
    assert status == 200
    assert "TLS-SRP as <strong>alice</strong>" in body
    assert 'name="password"' not in body
    status, body = curl(server, *srp, "-F", "mode=csr", "-F", f"csr_file=@{path}")
    assert status == 200, body[:2000]
    cert = shown_certificate(body)
    cert.verify_directly_issued_by(server.state.ca.certificate)
    assert cert.public_key() == key.public_key()
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.requester, entry.auth_method) == ("alice", "srp")


def test_urlencoded_form_with_awkward_password(server: RunningServer, tmp_path: Path) -> None:
    path, key = csr_file(tmp_path, serialization.Encoding.PEM)
    common = ["--cacert", str(server.ca_file), "--data-urlencode", "user=alice"]
    common += ["--data-urlencode", f"csr@{path}"]
    status, body = curl(server, *common, "--data-urlencode", "password=p w%2B=&")
    assert status == 401
    assert "Invalid user name or password." in body
    status, body = curl(server, *common, "--data-urlencode", f"password={PASSWORD}")
    assert status == 200, body[:2000]
    cert = shown_certificate(body)
    cert.verify_directly_issued_by(server.state.ca.certificate)
    assert cert.public_key() == key.public_key()
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.auth_method == "basic"
