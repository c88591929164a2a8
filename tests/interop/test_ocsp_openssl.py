"""The OCSP responder asked by `openssl ocsp` and curl, against `python-est serve`.

A real daemon with the plain-HTTP OCSP listener on: `openssl ocsp` over plain HTTP and over TLS
on the EST port for a good, a revoked (revoked by `python-est certs revoke` while the server
runs) and an unknown serial; GET with curl, the answer checked by `openssl ocsp -respin`; the
delegated signer made by `init`. What an attacker sends (garbage, oversized or multi-certificate
requests, EST paths over plain HTTP) gets its refusal over real sockets.
"""

from __future__ import annotations

import base64
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp

from est_harness import Daemon, basic_enroll, merge_config, prepare_state, run_cli
from python_est import wire
from python_est.ca import CertificateAuthority, certificate_pem
from python_est.keys import KeyType
from python_est.ledger import serial_hex
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

PASSWORD = "ocsp interop password"
PLAIN_PORT = re.compile(r"OCSP over plain HTTP on 127\.0\.0\.1:(\d+)")
CONFIG = (
    "[ocsp]\nhttp_enabled = yes\nhttp_port = 0\nbase_url = http://ocsp.example.net\n"
    "[profile]\npassword_subjects = any\n"
)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(args, input=stdin, capture_output=True, timeout=60, check=False)


class Setup:
    """A running daemon, its CA and trust files, and certificates to ask about."""

    def __init__(self, root: Path, extra: str = "") -> None:
        require_tool("openssl")
        self.root = root
        self.config = prepare_state(root, merge_config(CONFIG, extra), users={"ops": PASSWORD})
        state = root / "state"
        self.trust = state / "ca" / "ca.pem"
        self.ca = CertificateAuthority.from_pem(
            self.trust.read_bytes(), (state / "ca" / "ca.key").read_bytes()
        )
        self.ca_file = root / "ca.pem"
        self.ca_file.write_bytes(certificate_pem(self.ca.certificate))
        self.daemon = Daemon(self.config)
        self.plain_port = 0

    def start(self) -> Setup:
        self.daemon.start()
        line = self.daemon.wait_for(PLAIN_PORT.pattern)[0]  # one per worker
        match = PLAIN_PORT.search(line)
        assert match is not None
        self.plain_port = int(match.group(1))
        return self

    def enroll(self, cn: str) -> tuple[x509.Certificate, Path]:
        reply = basic_enroll(self.daemon.port, self.trust, "ops", PASSWORD, cn)
        assert reply.status == 200, reply.body
        [cert] = wire.decode_certs_only(reply.body)
        return cert, self.write(cn, cert)

    def write(self, name: str, cert: x509.Certificate) -> Path:
        path = self.root / f"{name}.pem"
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    def ask(self, cert: Path, url: str, *extra: str) -> str:
        """`openssl ocsp` for `cert`: its verdict line(s), after "Response verify OK"."""
        done = run(
            "openssl", "ocsp", "-issuer", str(self.ca_file), "-cert", str(cert),
            "-url", url, "-CAfile", str(self.ca_file), "-timeout", "20", *extra,
        )  # fmt: skip
        text = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 0, text
        assert "Response verify OK" in text, text
        return text

    def plain(self, path: str = "/ocsp") -> str:
        return f"http://127.0.0.1:{self.plain_port}{path}"

    def tls(self, path: str = "/ocsp") -> str:
        return f"https://127.0.0.1:{self.daemon.port}{path}"

    def close(self) -> None:
        self.daemon.close()


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[Setup]:
    running = Setup(tmp_path / "server")
    try:
        yield running.start()
    finally:
        running.close()


def test_good_revoked_and_unknown_over_plain_http_and_tls_and_revocation_without_restart(
    setup: Setup,
) -> None:
    good, good_pem = setup.enroll("good-device")
    doomed, doomed_pem = setup.enroll("doomed-device")
    # Signed by the CA but never recorded: not a certificate this CA issued.
    stray, _ = setup.ca.issue_client_certificate(common_name="never issued")
    stray_pem = setup.write("stray", stray)

    shown = run("openssl", "x509", "-in", str(good_pem), "-noout", "-ext", "authorityInfoAccess")
    assert b"OCSP - URI:http://ocsp.example.net/ocsp" in shown.stdout, shown

    for url in (setup.plain(), setup.tls()):
        assert f"{good_pem}: good" in setup.ask(good_pem, url)
        assert f"{doomed_pem}: good" in setup.ask(doomed_pem, url)
        assert f"{stray_pem}: unknown" in setup.ask(stray_pem, url)

    revoked = run_cli(
        setup.config, "certs", "revoke", serial_hex(doomed.serial_number),
        "--reason", "keyCompromise",
    )  # fmt: skip
    assert revoked.returncode == 0, revoked.stderr
    for url in (setup.plain(), setup.tls()):
        text = setup.ask(doomed_pem, url)
        assert f"{doomed_pem}: revoked" in text, text
        assert "Reason: keyCompromise" in text, text
        assert f"{good_pem}: good" in setup.ask(good_pem, url)
    assert good.serial_number != doomed.serial_number


def test_get_with_curl_is_cacheable_and_verified_by_openssl(setup: Setup) -> None:
    require_tool("curl")
    _, pem = setup.enroll("get-device")
    request = setup.root / "request.der"
    made = run(
        "openssl", "ocsp", "-issuer", str(setup.ca_file), "-cert", str(pem),
        "-no_nonce", "-reqout", str(request),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    encoded = quote(base64.b64encode(request.read_bytes()).decode("ascii"), safe="")
    for url in (setup.plain(f"/ocsp/{encoded}"), setup.tls(f"/ocsp/{encoded}")):
        answer = setup.root / "answer.der"
        fetched = run(
            "curl", "-sS", "--cacert", str(setup.trust), "-D", "-", "-o", str(answer), url
        )
        headers = fetched.stdout.decode().lower()
        assert fetched.returncode == 0, fetched.stderr
        assert "content-type: application/ocsp-response" in headers
        assert "cache-control: max-age=3600, public, no-transform, must-revalidate" in headers
        assert "last-modified:" in headers and "expires:" in headers and "etag:" in headers
        checked = run(
            "openssl", "ocsp", "-respin", str(answer), "-issuer", str(setup.ca_file),
            "-cert", str(pem), "-CAfile", str(setup.ca_file), "-no_nonce",
        )  # fmt: skip
        text = checked.stdout.decode() + checked.stderr.decode()
        assert checked.returncode == 0 and "Response verify OK" in text, text
        assert f"{pem}: good" in text


def post_raw(port: int, body: bytes, path: str = "/ocsp") -> tuple[int, bytes]:
    """POST `body` over plain HTTP with a raw socket; (status, body)."""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(head + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    top, _, payload = data.partition(b"\r\n\r\n")
    return int(top.split()[1]), payload


def test_bad_requests_get_malformed_request_and_the_server_keeps_answering(setup: Setup) -> None:
    _, first = setup.enroll("first")
    _, second = setup.enroll("second")
    multi = setup.root / "multi.der"
    made = run(
        "openssl", "ocsp", "-issuer", str(setup.ca_file), "-cert", str(first),
        "-cert", str(second), "-reqout", str(multi),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    for body in (
        b"garbage",
        b"\x30\x82\xff\xff" + b"\x00" * 16,
        b"\x30" * 9000,
        multi.read_bytes(),
    ):
        status, der = post_raw(setup.plain_port, body)
        assert status == 200
        parsed = ocsp.load_der_ocsp_response(der)
        assert parsed.response_status is ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    # An issuer this server does not serve: unauthorized (RFC 6960 §2.3), nothing signed.
    stranger = CertificateAuthority.create_root(
        common_name=setup.ca.certificate.subject.rfc4514_string()[3:],  # the same name
        key_type=KeyType.EC_P256,
        validity_days=30,
    )
    foreign, _ = stranger.issue_client_certificate(common_name="foreign")
    request = ocsp.OCSPRequestBuilder().add_certificate(foreign, stranger.certificate, SHA1())
    status, der = post_raw(setup.plain_port, request.build().public_bytes(Encoding.DER))
    assert status == 200
    answer = ocsp.load_der_ocsp_response(der)
    assert answer.response_status is ocsp.OCSPResponseStatus.UNAUTHORIZED
    # Over the server's body cap the HTTP layer refuses it before any OCSP work.
    status, text = post_raw(setup.plain_port, b"\x30" * 70000)
    assert status == 413, text
    # The same responder still answers a well-formed request.
    assert f"{first}: good" in setup.ask(first, setup.plain())


def test_the_plain_port_serves_nothing_but_ocsp(setup: Setup) -> None:
    for path in ("/.well-known/est/cacerts", "/healthz", "/crl/ca.crl", "/"):
        with socket.create_connection(("127.0.0.1", setup.plain_port), timeout=20) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 404 "), (path, data[:200])
        assert b"only OCSP is served on this port" in data
    status, _ = post_raw(setup.plain_port, b"x", "/.well-known/est/simpleenroll")
    assert status == 404


def test_a_delegated_signer_made_by_init_signs_and_openssl_accepts_it(tmp_path: Path) -> None:
    running = Setup(tmp_path / "server", "[ocsp]\nsigner = delegated\n")
    try:
        # Asked for but missing: serve stops at once and names the command that makes it.
        refused = run_cli(running.config, "serve")
        assert refused.returncode == 2
        assert "[ocsp] signer" in refused.stderr and "init --ocsp-signer" in refused.stderr
        made = run_cli(running.config, "init")
        assert made.returncode == 0, made.stderr
        assert "new delegated OCSP signer" in made.stdout
        ocsp_dir = running.root / "state" / "ocsp"
        assert (ocsp_dir / "signer.key").stat().st_mode & 0o777 == 0o600
        signer = x509.load_pem_x509_certificate((ocsp_dir / "signer.pem").read_bytes())

        running.start()
        _, pem = running.enroll("delegated-device")
        for url in (running.plain(), running.tls()):
            text = running.ask(pem, url, "-resp_text")
            assert f"{pem}: good" in text
            # The signer travels in the response: EKU OCSP Signing and id-pkix-ocsp-nocheck.
            assert "OCSP Signing" in text and "OCSP No Check" in text, text
            assert f"{signer.serial_number:X}" in text.replace(":", "").upper()
        replaced = run_cli(running.config, "init", "--ocsp-signer")
        assert replaced.returncode == 0, replaced.stderr
        assert "replaced the delegated OCSP signer" in replaced.stdout
    finally:
        running.close()


def test_workers_share_the_plain_port_and_a_reload_switches_the_signer(tmp_path: Path) -> None:
    running = Setup(tmp_path / "server", "[server]\nworkers = 2\n")
    try:
        made = run_cli(running.config, "init", "--ocsp-signer")
        assert made.returncode == 0 and "set [ocsp] signer = delegated" in made.stdout, made
        running.start()
        running.daemon.wait_for(PLAIN_PORT.pattern, count=2)
        _, pem = running.enroll("worker-device")
        for _ in range(4):  # whichever worker accepts
            text = running.ask(pem, running.plain(), "-resp_text")
            assert f"{pem}: good" in text and "OCSP No Check" not in text, text
        config = running.config.read_text()
        running.config.write_text(config.replace("[ocsp]\n", "[ocsp]\nsigner = delegated\n", 1))
        running.daemon.send(signal.SIGHUP)
        running.daemon.wait_for("reloaded the configuration", count=2)
        for _ in range(4):
            text = running.ask(pem, running.plain(), "-resp_text")
            assert f"{pem}: good" in text and "OCSP No Check" in text, text
    finally:
        running.close()
