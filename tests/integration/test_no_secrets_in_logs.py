"""No password, private key or verifier in the logs of a whole run, at debug level.

The server (`main.py -c CFG -d`, a subprocess) and the CLI commands go through a full flow:
init, user add, cacerts, enroll by Basic and by TLS-SRP, wrong passwords over both, a
reenroll, /serverkeygen (the response carries a private key), the bootstrap form (password
and PKCS#12 passphrase), a password change, a SIGHUP reload and the admin commands. Every byte
they log (server stderr, CLI stdout and stderr) is then searched for each secret in every form
it exists in: plain, Basic-encoded, base64, hex and decimal.
"""

from __future__ import annotations

import base64
import json
import os
import signal
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization
from tlslite.errors import TLSRemoteAlert

import est_harness as h

pytestmark = pytest.mark.integration

USER = "alice"
PASSWORD = "Correct-Horse-7391"
NEW_PASSWORD = "Battery-Staple-5520"
WRONG_BASIC = "Wrong-Basic-Guess-11"
WRONG_SRP = "Wrong-Srp-Guess-22"
PASSPHRASE = "Pkcs12-Passphrase-33"
CONFIG = "[logging]\nlevel = debug\n[profile]\npassword_subjects = any\n"


def _forms(secret: str) -> list[str]:
    """The ways a password may show up in a log line."""
    return [
        secret,
        base64.b64encode(f"{USER}:{secret}".encode()).decode(),  # an Authorization header
        base64.b64encode(secret.encode()).decode(),
        secret.encode().hex(),
    ]


def _number_forms(raw: bytes) -> list[str]:
    number = int.from_bytes(raw, "big")
    return [
        base64.b64encode(raw).decode()[:40],
        raw.hex()[:40],
        f"{number:x}"[:40],
        f"{number:X}"[:40],
        str(number)[:40],
    ]


def _key_forms(pem: bytes) -> list[str]:
    """A private key's PEM body lines and its DER in hex: any of them leaked is the key."""
    key = serialization.load_pem_private_key(pem, password=None)
    der = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    body = [line for line in pem.decode().splitlines() if line and not line.startswith("-----")]
    return [*body[1:3], der.hex()[64:128]]  # the first line is mostly the algorithm header


def test_a_full_run_logs_no_secret(tmp_path: Path) -> None:
    cfg = h.write_config(tmp_path, CONFIG)
    state = tmp_path / "state"
    cli_output: list[str] = []

    def cli(*args: str, stdin: str = "") -> None:
        done = h.run_cli(cfg, "-d", *args, stdin=stdin)  # debug level for the CLI too
        cli_output.extend([done.stdout, done.stderr])
        assert done.returncode == 0, done.stderr

    cli("init")
    cli("user", "add", USER, "--password-stdin", stdin=PASSWORD + "\n")
    cafile = state / "ca" / "ca.pem"
    context = h.client_context(cafile)
    received_keys: list[bytes] = []

    with h.Daemon(cfg, args=("-d",)) as server:
        port = server.port
        assert (
            h.https(port, h.build_request("GET", f"{h.EST}/cacerts"), context=context).status == 200
        )

        key = h.make_key()
        enroll = h.enroll_request(
            f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(USER, key)[0]), h.basic(USER, PASSWORD)
        )
        reply = h.https(port, enroll, context=context)
        assert reply.status == 200
        cert_path, key_path = h.write_credentials(tmp_path, "device", reply.certificates()[0], key)
        received_keys.append(key_path.read_bytes())

        wrong = h.enroll_request(
            f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(USER)[0]), h.basic(USER, WRONG_BASIC)
        )
        assert h.https(port, wrong, context=context).status == 401
        srp_enroll = h.enroll_request(f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(USER)[0]))
        assert h.srp(port, USER, PASSWORD, srp_enroll).status == 200
        with pytest.raises(TLSRemoteAlert):
            h.srp(port, USER, WRONG_SRP, srp_enroll)

        mutual = h.client_context(cafile, (cert_path, key_path))
        reenroll = h.enroll_request(f"{h.EST}/simplereenroll", h.csr_body(h.make_csr(USER)[0]))
        assert h.https(port, reenroll, context=mutual).status == 200

        keygen = h.enroll_request(
            f"{h.EST}/serverkeygen", h.csr_body(h.make_csr(USER)[0]), h.basic(USER, PASSWORD)
        )
        reply = h.https(port, keygen, context=context)
        assert reply.status == 200
        received_keys.append(_server_generated_key(reply))

        form = urlencode(
            {
                "user": USER,
                "password": PASSWORD,
                "mode": "serverkeygen",
                "common_name": USER,
                "passphrase": PASSPHRASE,
                "passphrase2": PASSPHRASE,
            }
        ).encode()
        page = h.https(
            port,
            h.build_request(
                "POST", "/bootstrap", form, {"Content-Type": "application/x-www-form-urlencoded"}
            ),
            context=context,
        )
        assert page.status == 200, page.body[:300]

        cli("user", "passwd", USER, "--password-stdin", stdin=NEW_PASSWORD + "\n")
        os.kill(server.pid, signal.SIGHUP)
        server.wait_for("reloaded", timeout=20)
        enroll = h.enroll_request(
            f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(USER)[0]), h.basic(USER, NEW_PASSWORD)
        )
        assert h.https(port, enroll, context=context).status == 200
        cli("certs", "list")
        cli("ledger", "verify")
        cli("user", "list")

    logs = server.log() + "\n".join(cli_output)
    assert "DEBUG" in logs  # the run did log at debug level
    store = json.loads((state / "users.srp").read_text())
    secrets: dict[str, list[str]] = {
        "store secret": _number_forms(base64.b64decode(store["secret"])),
        "verifier": _number_forms(base64.b64decode(store["users"][USER]["verifier"])),
        "CA key": _key_forms((state / "ca" / "ca.key").read_bytes()),
        "TLS key": _key_forms((state / "tls" / "server.key").read_bytes()),
    }
    for name, value in [
        ("password", PASSWORD),
        ("new password", NEW_PASSWORD),
        ("wrong Basic password", WRONG_BASIC),
        ("wrong SRP password", WRONG_SRP),
        ("PKCS#12 passphrase", PASSPHRASE),
    ]:
        secrets[name] = _forms(value)
    for index, pem in enumerate(received_keys):
        secrets[f"client key {index}"] = _key_forms(pem)
    leaked = {name: form for name, forms in secrets.items() for form in forms if form in logs}
    assert not leaked, leaked
    assert "PRIVATE KEY" not in logs


def _server_generated_key(reply: h.Reply) -> bytes:
    """The PKCS#8 private key part of a /serverkeygen response, as PEM."""
    boundary = reply.headers["Content-Type"].split("boundary=")[1].strip('"')
    for part in reply.body.split(b"--" + boundary.encode()):
        head, _, body = part.partition(b"\r\n\r\n")
        if b"application/pkcs8" in head.lower():
            der = base64.b64decode(b"".join(body.split()))
            key = serialization.load_der_private_key(der, password=None)
            return key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    raise AssertionError("no application/pkcs8 part in the /serverkeygen response")
