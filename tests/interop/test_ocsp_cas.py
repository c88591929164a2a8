"""The OCSP responder of several CAs, asked by `openssl ocsp` over real TLS on the EST port.

Two CAs (`[ca]` for the default label, `[ca:second]` for label `b`): each certificate is
answered by its own CA, a revocation by `certs revoke --ca second` shows without a restart, and
a serial of one CA asked under the other CA's CertID is `unknown` (a CA vouches only for what it
issued, RFC 6960 §2.2). During a `ca rollover second`, a certificate of the old root is answered
and signed by the old root, one of the new root by the new root.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509 import ocsp

from est_harness import RunningServer, basic, build_request, csr_body, https, make_csr
from est_harness.config import TEST_CFG, merge_config
from est_harness.inproc import running_server
from python_est.ca import certificate_pem
from python_est.cli import main
from python_est.ledger import serial_hex
from tests.conftest import require_tool

pytestmark = pytest.mark.interop

USER, PASSWORD = "device-1", "ocsp per ca password"
EXTRA = (
    "[ca:second]\nkey_type = ec-p256\n[label:b]\nca = second\n[profile]\npassword_subjects = any\n"
)


def enroll(server: RunningServer, label: str, cn: str) -> x509.Certificate:
    csr, _ = make_csr(cn)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    target = f"/.well-known/est/{label}simpleenroll"
    raw = build_request("POST", target, csr_body(csr), headers, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert


class Asker:
    """`openssl ocsp` against the EST port of `server`, trusting `anchors` for the answers."""

    def __init__(self, server: RunningServer, folder: Path, anchors: list[x509.Certificate]):
        self.server, self.folder = server, folder
        self.trust = folder / "trust.pem"
        tls_root = server.ca_file.read_bytes()
        self.trust.write_bytes(tls_root + b"".join(certificate_pem(c) for c in anchors))

    def file(self, name: str, cert: x509.Certificate) -> Path:
        path = self.folder / f"{name}.pem"
        path.write_bytes(certificate_pem(cert))
        return path

    def ask(self, issuer: x509.Certificate, target: str, *, serial: int | None = None) -> str:
        """The verdict text for `target` (a certificate, or `serial` under `issuer`'s CertID);
        the signed response is kept in `<target>.der`."""
        issuer_file = self.file(f"issuer-{target}", issuer)
        subject = (
            ["-serial", f"0x{serial:X}"]
            if serial is not None
            else ["-cert", str(self.folder / f"{target}.pem")]
        )
        done = subprocess.run(
            [
                require_tool("openssl"), "ocsp", "-issuer", str(issuer_file), *subject,
                "-CAfile", str(self.trust), "-url",
                f"https://127.0.0.1:{self.server.port}/ocsp", "-timeout", "20",
                "-respout", str(self.folder / f"{target}.der"),
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        text = done.stdout + done.stderr
        assert done.returncode == 0 and "Response verify OK" in text, text
        return text

    def signer_key_hash(self, target: str) -> bytes:
        response = ocsp.load_der_ocsp_response((self.folder / f"{target}.der").read_bytes())
        assert response.responder_key_hash is not None
        return response.responder_key_hash


def key_hash(cert: x509.Certificate) -> bytes:
    # ResponderID byKey: SHA-1 of the subjectPublicKey BIT STRING (RFC 6960 §4.2.1).
    return x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest


def test_each_ca_answers_for_its_own_certificates_and_revocations_show_without_restart(
    tmp_path: Path,
) -> None:
    root = tmp_path / "server"
    root.mkdir()
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, EXTRA))
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
    with running_server(root, EXTRA) as server:
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD)
        default, second = server.state.ca.certificate, server.state.cas["second"].certificate
        asker = Asker(server, tmp_path, [default, second])
        named = enroll(server, "b/", "named-device")
        plain = enroll(server, "", "default-device")
        asker.file("named", named)
        asker.file("plain", plain)

        assert "named.pem: good" in asker.ask(second, "named")
        assert asker.signer_key_hash("named") == key_hash(second)
        assert "plain.pem: good" in asker.ask(default, "plain")
        assert asker.signer_key_hash("plain") == key_hash(default)
        # One CA's serial under the other CA's CertID: that CA never issued it.
        crossed = asker.ask(default, "crossed", serial=named.serial_number)
        assert f"0x{named.serial_number:X}: unknown" in crossed, crossed
        assert asker.signer_key_hash("crossed") == key_hash(default)
        crossed = asker.ask(second, "crossed2", serial=plain.serial_number)
        assert f"0x{plain.serial_number:X}: unknown" in crossed, crossed

        # Revoked from the command line while the server runs; --ca checks the issuer.
        assert (
            main(
                [
                    "-c",
                    str(cfg),
                    "certs",
                    "revoke",
                    serial_hex(named.serial_number),
                    "--ca",
                    "default",
                ]
            )
            != 0
        )
        revoke = ["certs", "revoke", serial_hex(named.serial_number), "--ca", "second"]
        assert main(["-c", str(cfg), *revoke, "--reason", "keyCompromise"]) == 0
        text = asker.ask(second, "named")
        assert "named.pem: revoked" in text and "Reason: keyCompromise" in text, text
        assert "plain.pem: good" in asker.ask(default, "plain")
        # Still unknown under the other CA's CertID, revoked or not.
        crossed = asker.ask(default, "crossed", serial=named.serial_number)
        assert f"0x{named.serial_number:X}: unknown" in crossed, crossed


def test_during_a_rollover_each_root_answers_for_its_own_certificates(tmp_path: Path) -> None:
    root = tmp_path / "server"
    root.mkdir()
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, EXTRA))
    assert main(["-c", str(cfg), "ca", "create", "second"]) == 0
    with running_server(root, EXTRA) as server:
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD)
        old_root = server.state.cas["second"].certificate
        old_cert = enroll(server, "b/", "before-rollover")
    assert main(["-c", str(cfg), "ca", "rollover", "second"]) == 0
    with running_server(root, EXTRA) as server:  # the restart docs/ca.md asks for
        new_root = server.state.cas["second"].certificate
        assert new_root != old_root
        new_cert = enroll(server, "b/", "after-rollover")
        new_cert.verify_directly_issued_by(new_root)
        asker = Asker(server, tmp_path, [old_root, new_root])
        asker.file("old", old_cert)
        asker.file("new", new_cert)
        assert "old.pem: good" in asker.ask(old_root, "old")
        assert asker.signer_key_hash("old") == key_hash(old_root)
        assert "new.pem: good" in asker.ask(new_root, "new")
        assert asker.signer_key_hash("new") == key_hash(new_root)
        # The old root vouches only for its own: the new certificate under its CertID is unknown.
        crossed = asker.ask(old_root, "crossed", serial=new_cert.serial_number)
        assert f"0x{new_cert.serial_number:X}: unknown" in crossed, crossed
        assert (
            main(
                [
                    "-c",
                    str(cfg),
                    "certs",
                    "revoke",
                    serial_hex(old_cert.serial_number),
                    "--ca",
                    "second",
                ]
            )
            == 0
        )
        assert "old.pem: revoked" in asker.ask(old_root, "old")
        assert asker.signer_key_hash("old") == key_hash(old_root)
