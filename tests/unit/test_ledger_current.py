"""`Ledger.current_certificates`: what an RA may renew on behalf of a device (issue 13 item 1).

`exercise_current_certificates` runs against any ledger; tests/integration/test_postgres.py
runs it on PostgreSQL, this module on SQLite.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from python_est.ca import CertificateAuthority
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate, Ledger, SqliteLedger
from python_est.ledger.rows import CURRENT_LIMIT

CA = CertificateAuthority.create(
    common_name="current test CA", key_type=KeyType.EC_P256, validity_days=30
)


def entry(cn: str, label: str, issued_at: datetime) -> IssuedCertificate:
    cert, _ = CA.issue_client_certificate(common_name=cn)
    made = IssuedCertificate.from_certificate(
        cert, requester=cn, auth_method="basic", label=label, operation="simpleenroll"
    )
    return replace(made, issued_at=issued_at)


def exercise_current_certificates(ledger: Ledger) -> None:
    """Only unrevoked, unexpired certificates of that label and exact subject, newest first."""
    start = datetime.now(timezone.utc)
    old, new = entry("dev", "iot", start), entry("dev", "iot", start + timedelta(seconds=1))
    revoked, other_label = entry("dev", "iot", start), entry("dev", "", start)
    other_name, folded = entry("dev2", "iot", start), entry("DEV", "iot", start)
    for item in (old, new, revoked, other_label, other_name, folded):
        ledger.record(item)
    ledger.revoke(revoked.serial, "keyCompromise")
    found = ledger.current_certificates("iot", "CN=dev", start)
    assert [e.serial for e in found] == [new.serial, old.serial]
    assert [e.serial for e in ledger.current_certificates("", "CN=dev", start)] == [
        other_label.serial
    ]
    assert ledger.current_certificates("iot", "CN=dev", new.not_after) == []  # expired by then
    assert ledger.current_certificates("nosuch", "CN=dev", start) == []
    for index in range(CURRENT_LIMIT + 2):
        ledger.record(entry("many", "iot", start + timedelta(seconds=index)))
    assert len(ledger.current_certificates("iot", "CN=many", start)) == CURRENT_LIMIT


def test_sqlite_current_certificates(tmp_path: Path) -> None:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as ledger:
        exercise_current_certificates(ledger)
