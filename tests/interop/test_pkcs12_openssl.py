"""The bootstrap page's PKCS#12 files read by the openssl CLI: MAC and key bag at one count."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from python_est.wire import encode_pkcs12
from tests.conftest import require_tool
from tests.unit.test_pkcs12 import PASSPHRASE, self_signed

pytestmark = pytest.mark.interop


def test_openssl_reads_both_iteration_counts(tmp_path: Path) -> None:
    openssl = require_tool("openssl")
    key, cert = self_signed()
    path = tmp_path / "device.p12"
    path.write_bytes(encode_pkcs12(b"device", key, cert, [], PASSPHRASE, 3000))
    info = subprocess.run(
        [openssl, "pkcs12", "-info", "-noout", "-in", str(path), "-passin", "stdin"],
        input=PASSPHRASE + b"\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert info.returncode == 0, info.stderr
    text = info.stderr.decode()
    assert "MAC: sha256, Iteration 3000" in text
    assert "PBES2, PBKDF2, AES-256-CBC, Iteration 3000" in text
