"""The bootstrap page's two PKCS#12 formats, opened by `openssl pkcs12` (OpenSSL 3).

The default is AES-256 under PBES2 with a SHA-256 MAC; "compatible" (for older Android and macOS
keychains) is PBES1 3DES with a SHA-1 MAC. Both must open with the passphrase, without
`-legacy`, and hold the key and certificate the page issued.
"""

from __future__ import annotations

import base64
import html
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from est_harness import RunningServer, running_server
from python_est.bootstrap.p12 import compatible_pkcs12
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD, PASSPHRASE = "phone-1", "phone-password-1", "pkcs12 pass phrase"
INFO = {
    "aes256": (b"PBES2, PBKDF2, AES-256-CBC", b"MAC: sha256"),
    "compatible": (b"pbeWithSHA1And3-KeyTripleDES-CBC", b"MAC: sha1"),
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    require_tool("curl")
    require_tool("openssl")
    with running_server(tmp_path_factory.mktemp("p12")) as running:
        assert running.state.users is not None
        running.state.users.add(USER, PASSWORD)
        yield running


def openssl(*args: str) -> bytes:
    result = subprocess.run(["openssl", *args], capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout + result.stderr


def opened(path: Path) -> tuple[bytes, bytes]:
    """(the certificate, the private key) as `openssl pkcs12` reads them, in PEM."""
    common = ("pkcs12", "-in", str(path), "-passin", f"pass:{PASSPHRASE}")
    cert = openssl(*common, "-nokeys", "-clcerts")
    key = openssl(*common, "-nocerts", "-nodes")
    return x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.PEM), (
        serialization.load_pem_private_key(key, None).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def request_pkcs12(server: RunningServer, fmt: str | None) -> tuple[str, bytes, x509.Certificate]:
    """Submit the server-keygen form with curl; the download's name and bytes, and the cert."""
    fields = [f"user={USER}", f"password={PASSWORD}", "mode=serverkeygen", f"common_name={USER}"]
    fields += [f"passphrase={PASSPHRASE}", f"passphrase2={PASSPHRASE}"]
    if fmt is not None:
        fields.append(f"p12_format={fmt}")
    form = [arg for field in fields for arg in ("-F", field)]
    result = subprocess.run(
        ["curl", "-sS", "--cacert", str(server.ca_file), *form, server.url("/bootstrap")],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    page = result.stdout.decode("utf-8")
    [(name, data)] = re.findall(r'download="([^"]+\.p12)" href="data:[^;]+;base64,([^"]+)"', page)
    shown = re.search(r'<pre id="certificate-pem">(.*?)</pre>', page, re.S)
    assert shown is not None
    cert = x509.load_pem_x509_certificate(html.unescape(shown.group(1)).encode("ascii"))
    return name, base64.b64decode(data), cert


@pytest.mark.parametrize(
    ("fmt", "suffix"), [(None, ".p12"), ("aes256", ".p12"), ("compatible", "-compatible.p12")]
)
def test_each_format_opens_with_openssl_and_holds_the_issued_key(
    server: RunningServer, tmp_path: Path, fmt: str | None, suffix: str
) -> None:
    name, blob, cert = request_pkcs12(server, fmt)
    assert name == USER + suffix
    path = tmp_path / name
    path.write_bytes(blob)
    algorithm, mac = INFO[fmt or "aes256"]
    info = openssl("pkcs12", "-in", str(path), "-passin", f"pass:{PASSPHRASE}", "-info", "-noout")
    assert algorithm in info and mac in info, info
    cert_pem, key_pem = opened(path)
    assert cert_pem == cert.public_bytes(serialization.Encoding.PEM)
    key = serialization.load_pem_private_key(key_pem, None)
    assert key.public_key() == cert.public_key()
    wrong = subprocess.run(
        ["openssl", "pkcs12", "-in", str(path), "-passin", "pass:wrong", "-noout"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert wrong.returncode != 0


def test_both_formats_carry_the_same_key_and_certificate(
    server: RunningServer, tmp_path: Path
) -> None:
    _, blob, cert = request_pkcs12(server, None)
    loaded = pkcs12.load_pkcs12(blob, PASSPHRASE.encode())
    assert loaded.key is not None and loaded.cert is not None
    key = loaded.key
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    chain = [c.certificate for c in loaded.additional_certs]
    modern = tmp_path / "modern.p12"
    modern.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"x",
            key,
            cert,
            chain,
            BestAvailableEncryption(PASSPHRASE.encode()),
        )
    )
    compatible = tmp_path / "compatible.p12"
    compatible.write_bytes(compatible_pkcs12("x", key, cert, chain, PASSPHRASE))
    assert opened(modern) == opened(compatible)
    # The CA chain travels in both.
    for path in (modern, compatible):
        cas = openssl(
            "pkcs12", "-in", str(path), "-passin", f"pass:{PASSPHRASE}", "-cacerts", "-nokeys"
        )
        assert x509.load_pem_x509_certificates(cas) == chain
