"""An existing state directory upgrades to CAs per label without change (issue 16 item 1).

The state is laid out as `python-est init` before this change made it: ca/, tls/, the users
and a ledger at schema version 3 (the published MIGRATIONS[:3], so exactly the tables that
version created) holding a certificate the CA issued, one revoked. The new server starts on it
unchanged: the CA files keep their bytes, every old row is the `[ca]` CA's ("default"), the old
certificate renews over real TLS, and the CRL keeps listing the old revocation with a larger
number.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_harness import basic, build_request, csr_body, https, make_csr, write_credentials
from est_harness.config import TEST_CFG, merge_config
from est_harness.inproc import running_server
from python_est import wire
from python_est.config import load_config
from python_est.ledger import serial_hex
from python_est.ledger.schema import MIGRATIONS
from python_est.state import open_state

USER, PASSWORD = "device-1", "migration-password-1"


def _v3_ledger(path: Path, rows: list[tuple[x509.Certificate, str | None]]) -> None:
    """A ledger as the version-3 schema made it, with `rows` (certificate, revocation reason)."""
    path.unlink()
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    for statements in MIGRATIONS[:3]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 3")
    for cert, reason in rows:
        stamp = cert.not_valid_before_utc.isoformat(timespec="microseconds")
        raw.execute(
            "INSERT INTO certificates (serial, subject, sans, not_before, not_after, issued_at,"
            " requester, auth_method, label, operation, server_generated_key, pem, revoked_at,"
            " revocation_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                serial_hex(cert.serial_number),
                cert.subject.rfc4514_string(),
                json.dumps([]),
                stamp,
                cert.not_valid_after_utc.isoformat(timespec="microseconds"),
                stamp,
                USER,
                "basic",
                "",
                "simpleenroll",
                0,
                cert.public_bytes(serialization.Encoding.PEM).decode(),
                None if reason is None else stamp,
                reason,
            ),
        )
    raw.close()


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_state_from_before_cas_per_label_starts_unchanged(tmp_path: Path) -> None:
    root = tmp_path / "server"
    root.mkdir()
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG))
    with open_state(load_config(cfg), create=True) as state:
        kept, kept_key = state.ca.issue_client_certificate(common_name=USER)
        gone, _ = state.ca.issue_client_certificate(common_name="device-2")
    ledger = root / "state" / "ledger.sqlite3"
    _v3_ledger(ledger, [(kept, None), (gone, "keyCompromise")])
    before = {name: _digests(root / "state" / name) for name in ("ca", "tls")}

    with running_server(root) as server:
        assert {name: _digests(root / "state" / name) for name in ("ca", "tls")} == before
        assert not (root / "state" / "cas").exists()
        entry = server.state.ledger.get(kept.serial_number)
        assert entry is not None and entry.ca == "default"
        listed = server.state.ledger.list_certificates(ca="default")
        assert {e.serial for e in listed} == {kept.serial_number, gone.serial_number}
        # The old certificate renews on the default label, over real TLS.
        credentials = write_credentials(tmp_path, "kept", kept, kept_key)
        csr, _ = make_csr(USER)
        request = build_request(
            "POST",
            "/.well-known/est/simplereenroll",
            csr_body(csr),
            {"Content-Type": "application/pkcs10"},
            server.port,
        )
        reply = https(server.port, request, cafile=server.ca_file, client_cert=credentials)
        assert reply.status == 200, reply.body
        [renewed] = reply.certificates()
        renewed_entry = server.state.ledger.get(renewed.serial_number)
        assert renewed_entry is not None and renewed_entry.ca == "default"
        # The old revocation is still on the [ca] CA's CRL.
        reply = https(
            server.port,
            build_request("GET", "/crl/ca.crl", port=server.port),
            cafile=server.ca_file,
        )
        crl = x509.load_der_x509_crl(reply.body)
        assert crl.get_revoked_certificate_by_serial_number(gone.serial_number) is not None
        # /cacerts is the same chain as before.
        reply = https(
            server.port,
            build_request("GET", "/.well-known/est/cacerts", port=server.port),
            cafile=server.ca_file,
        )
        assert wire.decode_certs_only(reply.body) == list(server.state.ca.chain)
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD)
        csr, _ = make_csr(USER)
        headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
        request = build_request(
            "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
        )
        assert https(server.port, request, cafile=server.ca_file).status == 200
    raw = sqlite3.connect(ledger)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert {row[0] for row in raw.execute("SELECT ca FROM certificates")} == {"default"}
    finally:
        raw.close()
