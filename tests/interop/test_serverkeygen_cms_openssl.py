"""Encrypted /serverkeygen keys opened by `openssl cms` (OpenSSL 3), not by our code.

For each recipient kind the OpenSSL CLI supports (RSA key transport, ECDH key agreement, and a
KEK with -secretkey/-secretkeyid), `openssl cms -decrypt` recovers the SignedData, `openssl cms
-verify` checks the server's signature against the EST CA and yields the AsymmetricKeyPackage,
and the key inside has the public key of the issued certificate (compared by `openssl pkey` and
`openssl x509 -pubkey`).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from est_harness import RunningServer
from python_est.keks import KekStore
from python_est.statedir import StateDir
from python_est.wire.keypackage import decode_key_package
from tests.conftest import require_tool
from tests.keygen_support import (
    LABELS,
    PASSWORDS,
    SERVER_GENERATED_KEY,
    enroll_device,
    parts,
    post,
    request_csr,
    to_cert,
    to_kek,
)

pytestmark = pytest.mark.interop


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    require_tool("openssl")
    running = start_est_server(LABELS)
    assert running.state.users is not None
    for user, password in PASSWORDS.items():
        running.state.users.add(user, password)
    return running


def openssl(*args: str) -> bytes:
    result = subprocess.run(["openssl", *args], capture_output=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


@pytest.mark.parametrize("kind", ["ktri-rsa", "kari-ec", "kekri"])
def test_openssl_cms_decrypts_the_key(server: RunningServer, tmp_path: Path, kind: str) -> None:
    if kind == "kekri":
        kek = os.urandom(32)
        KekStore(StateDir(server.config.server.state_dir).keks).add("", "fleet-7", kek)
        reply = post(server, "serverkeygen", request_csr("alice", to_kek("fleet-7")))
        recipient = ["-secretkey", kek.hex(), "-secretkeyid", b"fleet-7".hex()]
    else:
        label = "kari" if kind == "kari-ec" else ""
        cert, _, (cert_file, key_file) = enroll_device(
            server, tmp_path, "alice", kind.split("-")[1], label
        )
        reply = post(
            server,
            "serverkeygen",
            request_csr("alice", to_cert(cert)),
            label=label,
            client_cert=(cert_file, key_file),
        )
        recipient = ["-recip", str(cert_file), "-inkey", str(key_file)]
    content_type, der, issued = parts(reply)
    assert content_type == SERVER_GENERATED_KEY
    enveloped, signed, package = (tmp_path / n for n in ("env.der", "signed.der", "akp.der"))
    enveloped.write_bytes(der)
    openssl("cms", "-decrypt", "-inform", "DER", "-in", str(enveloped), "-out", str(signed),
            *recipient)  # fmt: skip
    openssl("cms", "-verify", "-inform", "DER", "-in", str(signed), "-CAfile",
            str(server.ca_file), "-purpose", "any", "-out", str(package))  # fmt: skip
    key_file_out = tmp_path / "key.der"
    key_file_out.write_bytes(decode_key_package(package.read_bytes()))
    cert_pem = tmp_path / "issued.pem"
    cert_pem.write_bytes(issued.public_bytes(serialization.Encoding.PEM))
    from_key = openssl("pkey", "-inform", "DER", "-in", str(key_file_out), "-pubout")
    from_cert = openssl("x509", "-in", str(cert_pem), "-noout", "-pubkey")
    assert from_key == from_cert


def test_openssl_shows_the_recipient_kind(server: RunningServer, tmp_path: Path) -> None:
    cert, _, files = enroll_device(server, tmp_path, "alice", "rsa")
    _, der, _ = parts(
        post(server, "serverkeygen", request_csr("alice", to_cert(cert)), client_cert=files)
    )
    dump = tmp_path / "env.der"
    dump.write_bytes(der)
    printed = openssl("cms", "-cmsout", "-print", "-inform", "DER", "-in", str(dump)).decode()
    assert "rsaesOaep" in printed and "subjectKeyIdentifier" in printed
    assert "contentType: pkcs7-signedData" in printed
