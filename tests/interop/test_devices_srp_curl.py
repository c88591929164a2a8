"""A one-time enrollment code used as TLS-SRP credentials by curl (OpenSSL's SRP client), with
a CSR made by the openssl CLI (issue 18 item 2): it enrolls once, and the second time the
handshake itself fails."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from est_harness import RunningServer
from python_est.cli import main
from tests.conftest import require_tool
from tests.interop.test_curl_est import openssl_csr, pkcs7_to_pem, run

pytestmark = pytest.mark.interop


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("curl")
    require_tool("openssl")
    return start_est_server("[label:iot]\n")


def add_device(server: RunningServer, capsys: pytest.CaptureFixture[str], subject: str) -> str:
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    capsys.readouterr()
    try:
        args = ["-c", str(server.root / "est.cfg"), "devices", "add", "--label", "iot"]
        assert main([*args, "--subject", subject]) == 0
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved
    out = capsys.readouterr().out
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("code"))


def test_curl_enrolls_once_with_a_code_over_srp(
    server: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = add_device(server, capsys, "CN=dev42")
    _, der = openssl_csr(tmp_path, "dev42")
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(der))
    out = tmp_path / "out.b64"

    def enroll() -> tuple[int, bytes, bytes]:
        result = run(
            "curl", "-sS", "-k", "--tlsauthtype", "SRP", "--tlsuser", "dev42",
            "--tlspassword", code, "-H", "Content-Type: application/pkcs10",
            "--data-binary", f"@{upload}", "-o", str(out), "-w", "%{http_code}",
            server.url("/.well-known/est/iot/simpleenroll"),
        )  # fmt: skip
        return result.returncode, result.stdout, result.stderr

    status, written, errors = enroll()
    assert status == 0 and written == b"200", errors
    leaf = pkcs7_to_pem(tmp_path, out.read_bytes(), "leaf")
    text = run("openssl", "x509", "-in", str(leaf), "-noout", "-subject").stdout
    assert b"CN = dev42" in text
    # The code is used up: the SRP handshake fails (curl's SSL connect error), no HTTP at all.
    status, written, errors = enroll()
    assert status == 35, (status, written, errors)
    assert server.state.ledger.count() == 1
