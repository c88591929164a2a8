"""strongSwan's EST client (`pki --estca`, `pki --est`, strongSwan 5.9.8) against the server.

Keys and requests come from `pki --gen` / `pki --req`, the way a strongSwan host makes them.
pki 5.9.8 appends `/.well-known/est/<operation>` to `--url` and has no label option, so it can
only reach the unlabelled profile: a URL ending in a label gives `/.well-known/est/iot/.well-known
/est/simpleenroll`. Its HTTPS fetcher is the `curl` plugin (Debian: libstrongswan-extra-plugins).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_private_key,
)
from cryptography.x509.oid import NameOID

from est_harness import RunningServer
from python_est.ledger import PendingStatus
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "dev1", "pki-password-1"
TIMEOUT = 20


def pki(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["pki", *args], capture_output=True, timeout=TIMEOUT, check=False)


def ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
    assert result.returncode == 0, result.stderr.decode(errors="replace")[-2000:]
    return result.stdout


def key_and_request(tmp: Path, name: str, cn: str) -> tuple[Path, Path]:
    """A P-256 key (DER) and a DER PKCS#10 request for CN=`cn`, both made by pki."""
    key = tmp / f"{name}.key.der"
    key.write_bytes(ok(pki("--gen", "--type", "ecdsa", "--size", "256")))
    csr = tmp / f"{name}.csr.der"
    csr.write_bytes(ok(pki("--req", "--in", str(key), "--type", "ecdsa", "--dn", f"CN={cn}")))
    return key, csr


def common_name(cert: x509.Certificate) -> str:
    [attribute] = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attribute.value)


def check_issued(server: RunningServer, pem: bytes, key: Path, cn: str) -> x509.Certificate:
    """The certificate pki wrote: requested CN, the key of the request, signed by our CA."""
    cert = x509.load_pem_x509_certificate(pem)
    assert common_name(cert) == cn
    cert.verify_directly_issued_by(server.state.ca.chain[0])
    public = load_der_private_key(key.read_bytes(), password=None).public_key()
    spki = (Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert cert.public_key().public_bytes(*spki) == public.public_bytes(*spki)
    assert server.state.ledger.get(cert.serial_number) is not None
    return cert


def est_args(server: RunningServer, csr: Path) -> list[str]:
    base = server.url("")
    return ["--est", "--url", base, "--cacert", str(server.ca_file), "--in", str(csr)]


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("pki")
    running = start_est_server("")
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def test_estca_writes_the_ca_certificates(server: RunningServer, tmp_path: Path) -> None:
    out = tmp_path / "cacerts"
    out.mkdir()
    result = pki(
        "--estca", "--url", server.url(""), "--cacert", str(server.ca_file),
        "--caout", str(out / "ca"), "--outform", "pem",
    )  # fmt: skip
    ok(result)
    assert b"Root CA cert is trusted" in result.stderr
    written = {x509.load_pem_x509_certificate(path.read_bytes()) for path in out.glob("ca*.pem")}
    assert written == set(server.state.ca.chain)


def test_enroll_with_basic_then_reenroll_with_the_certificate(
    server: RunningServer, tmp_path: Path
) -> None:
    key, csr = key_and_request(tmp_path, "first", USER)
    result = pki(*est_args(server, csr), "--userpass", f"{USER}:{PASSWORD}", "--outform", "pem")
    first = check_issued(server, ok(result), key, USER)
    assert b"Issued certificate is trusted" in result.stderr

    # Without credentials the server refuses, and pki reports the failure.
    refused = pki(*est_args(server, csr), "--outform", "pem")
    assert refused.returncode != 0 and b"HTTP 401" in refused.stderr

    # Renewal: a fresh key, the old certificate and key as the TLS client credentials.
    cert_file = tmp_path / "first.pem"
    cert_file.write_bytes(first.public_bytes(Encoding.PEM))
    new_key, new_csr = key_and_request(tmp_path, "second", USER)
    result = pki(
        *est_args(server, new_csr), "--cert", str(cert_file), "--key", str(key), "--outform", "pem"
    )
    renewed = check_issued(server, ok(result), new_key, USER)
    assert b"sending TLS client certificate" in result.stderr
    assert renewed.subject == first.subject and renewed.serial_number != first.serial_number


def test_manual_approval_is_polled_until_issued(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
) -> None:
    require_tool("pki")
    # pki sleeps max(--interval, Retry-After) between polls; the default 60 s is too slow here.
    server = start_est_server("[server]\npending_retry_after = 1\n[profile]\napproval = manual\n")
    assert server.state.users is not None
    server.state.users.add(USER, PASSWORD)
    key, csr = key_and_request(tmp_path, "held", USER)
    args = [*est_args(server, csr), "--userpass", f"{USER}:{PASSWORD}", "--outform", "pem"]
    proc = subprocess.Popen(
        ["pki", *args, "--interval", "1", "--maxpolltime", "15"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (pending := server.state.ledger.list_pending(PendingStatus.PENDING)):
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")
            assert time.monotonic() < deadline, "pki's request never reached the queue"
            time.sleep(0.05)
        [request] = pending
        assert request.subject == f"CN={USER}"
        time.sleep(1.2)  # let pki poll at least once more while the request is still held
        assert proc.poll() is None
        server.state.ledger.decide_pending(request.id, True, "ok")
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr.decode(errors="replace")[-2000:]
    assert b"EST request pending" in stderr
    cert = check_issued(server, stdout, key, USER)
    [done] = server.state.ledger.list_pending(PendingStatus.ISSUED)
    assert done.id == request.id and done.serial == cert.serial_number
