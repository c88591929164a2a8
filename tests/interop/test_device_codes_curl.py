"""A device enrolls with its one-time code (issue 18 item 2) the way a shell script would: an
openssl CLI key and CSR, curl with the code as HTTP Basic, the certificate read by openssl."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import pytest

from est_harness import RunningServer
from python_est.app.access import device_registry
from python_est.devices import Registration, generate_code
from tests.conftest import require_tool
from tests.interop.test_curl_est import curl, openssl_csr, pkcs7_to_pem, run

pytestmark = pytest.mark.interop


def test_curl_enrolls_once_with_a_code(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    require_tool("curl")
    require_tool("openssl")
    server = start_est_server("[label:iot]\n")
    code = generate_code()
    device_registry(server.config).add(
        Registration("iot", "dev42", "CN=dev42", (), datetime.now(timezone.utc)), code
    )
    _, der = openssl_csr(tmp_path, "dev42")
    upload = tmp_path / "csr.b64"
    upload.write_bytes(base64.encodebytes(der))
    args = ("-u", f"dev42:{code}", "-H", "Content-Type: application/pkcs10")
    status, _, body = curl(
        server, "/.well-known/est/iot/simpleenroll", *args, "--data-binary", f"@{upload}"
    )
    assert status == 200, body
    pem = pkcs7_to_pem(tmp_path, body, "dev42")
    shown = run("openssl", "x509", "-in", str(pem), "-noout", "-subject")
    assert shown.stdout.decode().strip().replace(" ", "") == "subject=CN=dev42"
    status, _, body = curl(
        server, "/.well-known/est/iot/simpleenroll", *args, "--data-binary", f"@{upload}"
    )
    assert status == 403 and b"used already" in body
