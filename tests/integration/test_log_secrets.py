"""No password, private key or verifier ever reaches the log, even at debug level.

A whole flow runs with `-d` and the JSON format (which also prints every structured audit
field): users are added and changed with the CLI, a device enrolls over HTTP Basic (and fails
once with a wrong password), gets a server-generated key, logs in over TLS-SRP, and the
operator revokes a certificate. Every line any of these processes wrote is then searched for
each secret, in every encoding it could plausibly be logged in.
"""

from __future__ import annotations

import base64
import json
import signal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from est_harness import (
    TEST_CFG,
    basic,
    build_request,
    csr_body,
    daemon,
    https,
    make_csr,
    run_cli,
    srp,
    write_config,
)
from python_est import wire
from python_est.messages import PKCS8

pytestmark = pytest.mark.integration

EXTRA = "[logging]\nformat = json\n"
PASSWORD = "correct horse battery staple"
WRONG = "incorrect mule battery staple"
CHANGED = "a newer secret for the second device"


def encodings(secret: bytes) -> set[str]:
    """The ways a secret could appear in a log line: raw, hex, base64 (whole and wrapped)."""
    b64 = base64.b64encode(secret).decode()
    found = {secret.hex(), secret.hex().upper(), b64, *wire.encode_base64(secret).decode().split()}
    # A long secret could be cut: every 48-character stretch of its base64 as well.
    found |= {b64[i : i + 48] for i in range(0, max(1, len(b64) - 48), 16)}
    try:
        found.add(secret.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return {item for item in found if len(item) >= 16}


def pem_bodies(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {line for line in lines if line and not line.startswith("-----")}


def test_no_secret_reaches_any_log(tmp_path: Path) -> None:
    config = write_config(tmp_path, EXTRA, base=TEST_CFG)
    outputs = []
    for args, stdin in (
        (("-d", "init"), ""),
        (("-d", "user", "add", "device-1", "--password-stdin"), PASSWORD),
        (("-d", "user", "add", "device-2", "--password-stdin"), PASSWORD),
        (("-d", "user", "passwd", "device-2", "--password-stdin"), CHANGED),
    ):
        done = run_cli(config, *args, stdin=stdin + "\n")
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)

    with daemon(tmp_path, EXTRA, args=("-d",), notify=False) as running:
        cafile = tmp_path / "state" / "ca" / "ca.pem"

        def post(operation: str, cn: str, password: str) -> tuple[int, bytes, str]:
            csr, _ = make_csr(cn)
            headers = {"Content-Type": "application/pkcs10"}
            headers["Authorization"] = basic(cn, password)
            request = build_request(
                "POST", f"/.well-known/est/{operation}", csr_body(csr), headers, running.port
            )
            reply = https(running.port, request, cafile=cafile)
            return reply.status, reply.body, reply.headers.get("Content-Type", "")

        status, body, _ = post("simpleenroll", "device-1", PASSWORD)
        assert status == 200
        [enrolled] = wire.decode_certs_only(body)
        assert post("simpleenroll", "device-1", WRONG)[0] == 401
        status, body, content_type = post("serverkeygen", "device-2", CHANGED)
        assert status == 200
        [key_part] = [
            content
            for headers, content in wire.parse_multipart(content_type, body)
            if headers.get("content-type") == PKCS8
        ]
        key_der = base64.b64decode(b"".join(key_part.split()))
        key = serialization.load_der_private_key(key_der, password=None)
        csr, _ = make_csr("device-1")
        reply = srp(
            running.port,
            "device-1",
            PASSWORD,
            build_request(
                "POST",
                "/.well-known/est/simpleenroll",
                csr_body(csr),
                {"Content-Type": "application/pkcs10"},
                running.port,
            ),
        )
        assert reply.status == 200
        serial = f"{enrolled.serial_number:X}"
        done = run_cli(config, "-d", "certs", "revoke", serial, "--reason", "keyCompromise")
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
        running.send(signal.SIGHUP)  # a reload re-reads every key file
        running.wait_for("reloaded the configuration")
        assert running.stop() == 0
        outputs.append(running.output())

    log = "\n".join(outputs)
    # The flow did log: debug lines, audit events with their fields, connection lines.
    events = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    audit = {(e.get("event"), e.get("result")) for e in events if e["logger"] == "python_est.audit"}
    assert {("enroll", "issued"), ("serverkeygen", "issued"), ("revoke", "revoked")} <= audit
    assert ("enroll", "refused") in audit
    assert any(e["level"] == "debug" for e in events)

    users = json.loads((tmp_path / "state" / "users.srp").read_text())
    secrets: set[str] = {PASSWORD, WRONG, CHANGED, "PRIVATE KEY"}
    secrets |= encodings(f"device-1:{PASSWORD}".encode())
    secrets |= encodings(f"device-1:{WRONG}".encode())
    secrets |= encodings(f"device-2:{CHANGED}".encode())
    secrets |= encodings(key_der)
    assert isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey))
    numbers = key.private_numbers()
    secrets.add(
        format(
            numbers.d if isinstance(numbers, rsa.RSAPrivateNumbers) else numbers.private_value, "x"
        )
    )
    secrets |= encodings(base64.b64decode(users["secret"]))
    for entry in users["users"].values():
        verifier = base64.b64decode(entry["verifier"])
        secrets |= encodings(verifier)
        secrets.add(str(int.from_bytes(verifier, "big")))
    secrets |= pem_bodies(tmp_path / "state" / "ca" / "ca.key")
    secrets |= pem_bodies(tmp_path / "state" / "tls" / "server.key")

    leaked = sorted(secret[:24] for secret in secrets if secret in log)
    assert leaked == []
