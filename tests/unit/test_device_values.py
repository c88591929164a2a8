"""Registration values (issue 18 item 2): subjects, SANs, expiry, codes and the registry's
one-time claim, without a server."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from python_est.devices import (
    DeviceRegistry,
    Registration,
    default_name,
    generate_code,
    parse_expires,
    parse_san,
    parse_subject,
)
from python_est.errors import UserStoreError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", NOW + timedelta(minutes=30)),
        ("12h", NOW + timedelta(hours=12)),
        ("7d", NOW + timedelta(days=7)),
        ("2w", NOW + timedelta(weeks=2)),
        ("2027-01-01", datetime(2027, 1, 1, tzinfo=timezone.utc)),
        ("2027-01-01T08:00:00+02:00", datetime(2027, 1, 1, 6, tzinfo=timezone.utc)),
        ("never", None),
    ],
)
def test_expiry(text: str, expected: datetime | None) -> None:
    assert parse_expires(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "7", "7y", "-1d", "1e3d", "tomorrow", "9999999d"])
def test_bad_expiry(text: str) -> None:
    with pytest.raises(ValueError, match="expiry"):
        parse_expires(text, NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DNS:dev.example", "DNS:dev.example"),
        ("dns:dev.example", "DNS:dev.example"),
        ("IP:2001:db8::0:1", "IP:2001:db8::1"),
        ("email:a@b.example", "email:a@b.example"),
        ("URI:https://x.example/a", "URI:https://x.example/a"),
    ],
)
def test_sans(text: str, expected: str) -> None:
    assert parse_san(text) == expected


@pytest.mark.parametrize(
    "text", ["dev.example", "DNS:", "IP:300.1.1.1", "RID:1.2.3", "DNS:a\nb", "DNS:bücher.de"]
)
def test_bad_sans(text: str) -> None:
    with pytest.raises(ValueError, match="subjectAltName"):
        parse_san(text)


def test_subjects_are_normalised_and_checked() -> None:
    assert parse_subject("CN=dev42,O=Example") == "CN=dev42,O=Example"
    assert default_name("CN=dev42,O=Example") == "dev42"
    for bad in ("", "CN=a\x1b[2J", "no equals sign", "CN=dev42, O=Example"):
        with pytest.raises(ValueError):
            parse_subject(bad)
    with pytest.raises(ValueError, match="no single CN"):
        default_name("O=Example")


def test_codes_are_long_and_distinct() -> None:
    codes = {generate_code() for _ in range(50)}
    assert len(codes) == 50
    assert all(len(code.replace("-", "")) == 32 for code in codes)


def test_registry_claims_once_and_releases(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.sqlite3")
    registry.add(Registration("iot", "d1", "CN=d1", (), NOW, NOW + timedelta(days=1)), "code")
    with pytest.raises(UserStoreError, match="already has a device"):
        registry.add(Registration("iot", "d1", "CN=d1", (), NOW), "other")
    assert registry.check_code("iot", "d1", "code")
    assert not registry.check_code("iot", "d1", "Code")
    assert not registry.check_code("other", "d1", "code")
    assert registry.claim("iot", "d1", "t1", NOW)
    assert not registry.claim("iot", "d1", "t2", NOW)
    registry.release("iot", "d1", "t1")
    assert registry.claim("iot", "d1", "t2", NOW)
    registry.mark_used("iot", "d1", "t2", "0A", NOW)
    registry.release("iot", "d1", "t2")  # too late: used stays used
    assert not registry.claim("iot", "d1", "t3", NOW)
    used = registry.get("iot", "d1")
    assert used is not None and used.used_at == NOW and used.serial == "0A"


def test_registry_refuses_an_expired_claim(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.sqlite3")
    registry.add(Registration("iot", "d1", "CN=d1", (), NOW, NOW + timedelta(hours=1)), "code")
    assert not registry.claim("iot", "d1", "t", NOW + timedelta(hours=1))
    assert registry.claim("iot", "d1", "t", NOW + timedelta(minutes=59))


def test_a_chosen_password_is_hashed_slowly_and_checks_like_a_code(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    registry = DeviceRegistry(path)
    registry.add(Registration("iot", "fast", "CN=fast", (), NOW), "generated-code")
    registry.add(Registration("iot", "slow", "CN=slow", (), NOW), "chosen password", chosen=True)
    assert registry.check_code("iot", "fast", "generated-code")
    assert registry.check_code("iot", "slow", "chosen password")
    assert not registry.check_code("iot", "slow", "generated-code")
    with sqlite3.connect(path) as db:
        schemes = dict(db.execute("SELECT name, scheme FROM devices").fetchall())
    assert schemes == {"fast": "sha256", "slow": "scrypt"}


def test_srp_verifiers_are_stored_and_handed_out_while_usable(tmp_path: Path) -> None:
    registry = DeviceRegistry(tmp_path / "devices.sqlite3")
    verifier = (2048, b"\x01salt", 2**2000 + 12345)
    expiry = NOW + timedelta(hours=1)
    registry.add(Registration("iot", "d1", "CN=d1", (), NOW, expiry), "code", srp=verifier)
    registry.add(Registration("iot", "basic", "CN=basic", (), NOW), "code")
    assert registry.srp_entry("d1", NOW) == verifier
    assert registry.srp_entry("basic", NOW) is None
    assert registry.srp_entry("nobody", NOW) is None
    assert registry.srp_entry("d1", expiry) is None  # expired
    listed = {r.name: r.srp for r in registry.list()}
    assert listed == {"basic": False, "d1": True}
    # The handshake names no label: a second unused SRP code for the name is refused.
    with pytest.raises(UserStoreError, match="names no label"):
        registry.add(Registration("other", "d1", "CN=d1", (), NOW), "code2", srp=verifier)
    registry.add(Registration("other", "d1", "CN=d1", (), NOW), "code2")  # Basic only: fine
    assert registry.srp_labels("d1") == ["iot"]
    assert registry.claim("iot", "d1", "t", NOW)
    registry.mark_used("iot", "d1", "t", "0B", NOW)
    assert registry.srp_entry("d1", NOW) is None
    assert registry.srp_labels("d1") == []
    registry.add(Registration("third", "d1", "CN=d1", (), NOW), "code3", srp=verifier)
    assert registry.srp_entry("d1", NOW) == verifier


def test_an_older_registry_file_gains_the_srp_columns(tmp_path: Path) -> None:
    path = tmp_path / "devices.sqlite3"
    with sqlite3.connect(path) as db:  # the schema before codes worked over TLS-SRP
        db.execute(
            "CREATE TABLE devices (label TEXT NOT NULL, name TEXT NOT NULL, subject TEXT NOT "
            "NULL, sans TEXT NOT NULL, salt BLOB NOT NULL, code_hash BLOB NOT NULL, scheme TEXT "
            "NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, claim TEXT, used_at TEXT, "
            "serial TEXT, PRIMARY KEY (label, name))"
        )
        db.execute(
            "INSERT INTO devices VALUES ('iot', 'old', 'CN=old', '[]', ?, ?, 'sha256', ?, NULL, "
            "NULL, NULL, NULL)",
            (b"salt", hashlib.sha256(b"saltold-code").digest(), NOW.isoformat()),
        )
    db.close()
    DeviceRegistry(path)
    registry = DeviceRegistry(path)  # opened again: the columns exist already
    old = registry.get("iot", "old")
    assert old is not None and not old.srp
    assert registry.check_code("iot", "old", "old-code")
    assert registry.srp_entry("old", NOW) is None
