"""The SQLite ledger: durable records, revocation, integrity, pending requests, error mapping."""

from __future__ import annotations

import dataclasses
import errno
import ipaddress
import os
import sqlite3
import stat
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.errors import LedgerError, Unavailable
from python_est.ledger import (
    RETRY_AFTER_S,
    REVOCATION_REASONS,
    SCHEMA_VERSION,
    DuplicateSerial,
    IssuedCertificate,
    Ledger,
    PendingStateError,
    PendingStatus,
    SqliteLedger,
    UnknownPendingRequest,
    UnknownSerial,
    public_key_sha256,
    serial_hex,
    translate_sqlite_error,
)

DETAIL = "the certificate ledger is unavailable"
T0 = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_cert(
    key: ec.EllipticCurvePrivateKey,
    *,
    cn: str = "device-1",
    serial: int | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example, Inc."),
        ]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(T0)
        .not_valid_after(T0 + timedelta(days=30))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256())


def make_entry(
    cert: x509.Certificate, *, label: str = "", issued_at: datetime = T0
) -> IssuedCertificate:
    return IssuedCertificate.from_certificate(
        cert,
        requester="alice",
        auth_method="srp",
        label=label,
        operation="simpleenroll",
        issued_at=issued_at,
    )


def make_csr(
    key: ec.EllipticCurvePrivateKey, cn: str = "device-1"
) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ledger.sqlite3"


@pytest.fixture
def ledger(db_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(db_path) as opened:
        yield opened


def run_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run `target(index)` in `count` threads started together; return what they raised."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def body(index: int) -> None:
        barrier.wait()
        try:
            target(index)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


# --- values -------------------------------------------------------------------------------------


def test_from_certificate_takes_everything_from_the_certificate(
    key: ec.EllipticCurvePrivateKey,
) -> None:
    cert = make_cert(
        key,
        serial=0x0ABC,
        sans=[
            x509.DNSName("device.example"),
            x509.IPAddress(ipaddress.ip_address("192.0.2.7")),
            x509.IPAddress(ipaddress.ip_address("2001:db8::1")),
            x509.RFC822Name("ops@example.com"),
            x509.UniformResourceIdentifier("urn:dev:mac:0024befffe804ff1"),
        ],
    )
    entry = make_entry(cert)
    assert entry.serial == 0x0ABC
    assert entry.subject == "O=Example\\, Inc.,CN=device-1"
    assert entry.sans == (
        "DNS:device.example",
        "IP:192.0.2.7",
        "IP:2001:db8::1",
        "email:ops@example.com",
        "URI:urn:dev:mac:0024befffe804ff1",
    )
    assert entry.not_before == T0.replace(microsecond=0)
    assert entry.not_after == T0.replace(microsecond=0) + timedelta(days=30)
    assert x509.load_pem_x509_certificate(entry.pem.encode()) == cert
    assert entry.revoked_at is None and entry.revocation_reason is None
    assert make_entry(make_cert(key)).sans == ()


def test_issued_at_defaults_to_now(key: ec.EllipticCurvePrivateKey) -> None:
    before = datetime.now(timezone.utc)
    entry = IssuedCertificate.from_certificate(
        make_cert(key), requester="a", auth_method="basic", label="", operation="simpleenroll"
    )
    assert before <= entry.issued_at <= datetime.now(timezone.utc)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"serial": 0}, "positive"),
        ({"serial": -5}, "positive"),
        ({"issued_at": datetime(2030, 1, 1)}, "timezone-aware"),
        ({"revoked_at": T0}, "together"),
        ({"revoked_at": T0, "revocation_reason": "stolen"}, "unknown revocation reason"),
    ],
)
def test_entry_rejects_bad_values(
    key: ec.EllipticCurvePrivateKey, change: dict[str, Any], message: str
) -> None:
    entry = make_entry(make_cert(key))
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(entry, **change)


def test_serial_hex_is_openssl_style() -> None:
    assert serial_hex(0x0ABC) == "0ABC"
    assert serial_hex(0xFF) == "FF"
    assert serial_hex(1 << 159) == "80" + "00" * 19
    with pytest.raises(ValueError):
        serial_hex(0)


# --- file, pragmas, permissions -----------------------------------------------------------------


def test_creates_the_file_0600_in_wal_mode_with_the_current_schema(
    db_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    old_umask = os.umask(0)  # the mode must not depend on the umask
    try:
        ledger = SqliteLedger(db_path)
        ledger.record(make_entry(make_cert(key)))
        wal = db_path.with_name(db_path.name + "-wal")
        shm = db_path.with_name(db_path.name + "-shm")
        assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
        assert stat.S_IMODE(wal.stat().st_mode) == 0o600
        assert stat.S_IMODE(shm.stat().st_mode) == 0o600
        assert stat.S_IMODE(db_path.parent.stat().st_mode) == 0o700
        raw = sqlite3.connect(db_path)
        try:
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
            assert {"certificates", "pending_requests"} <= tables
        finally:
            raw.close()
        ledger.close()
    finally:
        os.umask(old_umask)


def test_reopening_keeps_the_records(db_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    entry = make_entry(make_cert(key))
    with SqliteLedger(db_path) as first:
        first.record(entry)
    with SqliteLedger(db_path) as second:
        assert second.get(entry.serial) == entry
        assert second.count() == 1


def test_sqlite_ledger_satisfies_the_protocol(ledger: SqliteLedger) -> None:
    seam: Ledger = ledger
    assert seam.count() == 0


def test_a_file_that_is_not_a_database_is_a_ledger_error(db_path: Path) -> None:
    db_path.parent.mkdir()
    db_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError) as info:
        SqliteLedger(db_path)
    assert info.value.status == 500
    assert info.value.detail == DETAIL
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_schema_from_a_newer_version_is_refused(db_path: Path) -> None:
    SqliteLedger(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(LedgerError):
        SqliteLedger(db_path)


def test_a_closed_ledger_raises_ledger_error(db_path: Path) -> None:
    ledger = SqliteLedger(db_path)
    ledger.close()
    with pytest.raises(LedgerError):
        ledger.count()


# --- record and read ----------------------------------------------------------------------------


def test_round_trip_of_every_field(ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey) -> None:
    cert = make_cert(key, sans=[x509.DNSName("a.example"), x509.RFC822Name("a@example.com")])
    plus_two = timezone(timedelta(hours=2))
    entry = IssuedCertificate.from_certificate(
        cert,
        requester="CN=ra,O=Example",
        auth_method="cert+basic",
        label="routers",
        operation="serverkeygen",
        server_generated_key=True,
        issued_at=T0.astimezone(plus_two),
    )
    ledger.record(entry)
    back = ledger.get(cert.serial_number)
    assert back == entry
    assert back is not None
    assert back.issued_at.utcoffset() == timedelta(0)
    assert back.server_generated_key is True
    assert back.sans == ("DNS:a.example", "email:a@example.com")
    assert ledger.get(cert.serial_number + 1) is None
    assert ledger.get(0) is None


def test_duplicate_serial_raises_and_changes_nothing(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    first = make_cert(key, serial=12345, cn="first")
    ledger.record(make_entry(first))
    with pytest.raises(DuplicateSerial) as info:
        ledger.record(make_entry(make_cert(key, serial=12345, cn="second")))
    assert info.value.serial == 12345
    assert info.value.status == 500
    assert isinstance(info.value, LedgerError)
    assert ledger.count() == 1
    kept = ledger.get(12345)
    assert kept is not None and kept.subject.endswith("CN=first")


def test_concurrent_inserts_keep_every_row(db_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    # Even threads share one ledger (the server); odd ones use a second connection to the same
    # file, as another process would.
    shared, other = SqliteLedger(db_path), SqliteLedger(db_path)
    entries = [[make_entry(make_cert(key)) for _ in range(50)] for _ in range(8)]

    def insert(index: int) -> None:
        target = shared if index % 2 == 0 else other
        for entry in entries[index]:
            target.record(entry)

    assert run_threads(8, insert) == []
    expected = {entry.serial for batch in entries for entry in batch}
    assert len(expected) == 400
    assert shared.count() == 400
    assert {e.serial for e in other.list_certificates(limit=1000)} == expected
    assert shared.integrity_check() == []
    shared.close()
    other.close()


def test_list_newest_first_with_filters_and_paging(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    entries = [
        make_entry(make_cert(key), label="a" if i % 2 else "b", issued_at=T0 + timedelta(minutes=i))
        for i in range(6)
    ]
    for entry in entries:
        ledger.record(entry)
    ledger.revoke(entries[1].serial, "keyCompromise")
    ledger.revoke(entries[4].serial, "superseded")
    newest_first = [e.serial for e in reversed(entries)]

    assert [e.serial for e in ledger.list_certificates()] == newest_first
    assert [e.serial for e in ledger.list_certificates(limit=2, offset=1)] == newest_first[1:3]
    assert [e.serial for e in ledger.list_certificates(label="a")] == [
        entries[5].serial,
        entries[3].serial,
        entries[1].serial,
    ]
    assert [e.serial for e in ledger.list_certificates(revoked=True)] == [
        entries[4].serial,
        entries[1].serial,
    ]
    assert [e.serial for e in ledger.list_certificates(revoked=False, label="b")] == [
        entries[2].serial,
        entries[0].serial,
    ]
    assert ledger.list_certificates(label="nothing") == []
    with pytest.raises(ValueError):
        ledger.list_certificates(limit=-1)


# --- revocation ---------------------------------------------------------------------------------


def test_revoke_records_reason_and_time_once(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    entry = make_entry(make_cert(key))
    other = make_entry(make_cert(key))
    ledger.record(entry)
    ledger.record(other)
    assert not ledger.is_revoked(entry.serial)

    revoked = ledger.revoke(entry.serial, "keyCompromise", when=T0)
    assert revoked.revoked_at == T0
    assert revoked.revocation_reason == "keyCompromise"
    assert ledger.is_revoked(entry.serial)
    assert not ledger.is_revoked(other.serial)
    assert not ledger.is_revoked(999)
    assert ledger.get(entry.serial) == revoked

    again = ledger.revoke(entry.serial, "superseded", when=T0 + timedelta(days=1))
    assert again == revoked


def test_every_crl_reason_name_is_accepted(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    for reason in REVOCATION_REASONS:
        entry = make_entry(make_cert(key))
        ledger.record(entry)
        assert ledger.revoke(entry.serial, reason).revocation_reason == reason


@pytest.mark.parametrize("reason", ["removeFromCRL", "keycompromise", "", "stolen"])
def test_revoke_rejects_other_reasons(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey, reason: str
) -> None:
    entry = make_entry(make_cert(key))
    ledger.record(entry)
    with pytest.raises(ValueError):
        ledger.revoke(entry.serial, reason)
    assert not ledger.is_revoked(entry.serial)


def test_revoke_unknown_serial(ledger: SqliteLedger) -> None:
    with pytest.raises(UnknownSerial):
        ledger.revoke(424242, "unspecified")
    with pytest.raises(LookupError):
        ledger.revoke(0, "unspecified")


# --- integrity and export -----------------------------------------------------------------------


def test_integrity_check_finds_tampered_rows(
    db_path: Path, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    entries = [make_entry(make_cert(key)) for _ in range(3)]
    for entry in entries:
        ledger.record(entry)
    assert ledger.integrity_check() == []

    raw = sqlite3.connect(db_path)
    with raw:
        raw.execute(
            "UPDATE certificates SET pem = ? WHERE serial = ?",
            (
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                serial_hex(entries[0].serial),
            ),
        )
        raw.execute(
            "UPDATE certificates SET pem = ? WHERE serial = ?",
            (entries[2].pem, serial_hex(entries[1].serial)),
        )
    raw.close()
    assert ledger.integrity_check() == [
        f"certificate {serial_hex(entries[0].serial)}: the PEM does not parse",
        f"certificate {serial_hex(entries[1].serial)}: the PEM has another serial",
    ]


def test_export_dir_gets_one_0600_pem_per_certificate(
    tmp_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    export = tmp_path / "issued"
    entry = make_entry(make_cert(key, serial=0xABCDE))
    with SqliteLedger(tmp_path / "ledger.sqlite3", export_dir=export) as ledger:
        ledger.record(entry)
    written = export / "0ABCDE.pem"
    assert written.read_text() == entry.pem
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in export.iterdir()] == [written.name]


def test_export_failure_keeps_the_commit(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    entry = make_entry(make_cert(key))
    with SqliteLedger(tmp_path / "ledger.sqlite3", export_dir=blocker) as ledger:
        ledger.record(entry)
        assert ledger.get(entry.serial) == entry


# --- storage failures ---------------------------------------------------------------------------


def test_writes_to_a_read_only_ledger_are_unavailable(
    db_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    entry = make_entry(make_cert(key))
    with SqliteLedger(db_path) as writable:
        writable.record(entry)
    with SqliteLedger(db_path, read_only=True) as ledger:
        assert ledger.get(entry.serial) == entry
        with pytest.raises(Unavailable) as info:
            ledger.record(make_entry(make_cert(key)))
        assert info.value.status == 503
        assert info.value.detail == DETAIL
        assert info.value.headers() == (("Retry-After", str(RETRY_AFTER_S)),)
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert "readonly" in str(info.value.__cause__)
        with pytest.raises(Unavailable):
            ledger.revoke(entry.serial, "unspecified")
        assert ledger.count() == 1


def test_read_only_open_of_a_missing_file_fails(db_path: Path) -> None:
    with pytest.raises(LedgerError):
        SqliteLedger(db_path, read_only=True)
    assert not db_path.exists()


def real_error(tmp_path: Path, action: str) -> sqlite3.Error:
    """Provoke a real SQLite failure of the named kind and return it."""
    conn = sqlite3.connect(tmp_path / f"{action}.sqlite3", timeout=0, isolation_level=None)
    holder = sqlite3.connect(tmp_path / f"{action}.sqlite3", isolation_level=None)
    try:
        conn.execute("CREATE TABLE t (x BLOB)")
        if action == "full":
            conn.execute("PRAGMA max_page_count = 2")
            sql = "INSERT INTO t VALUES (zeroblob(100000))"
        elif action == "locked":
            holder.execute("BEGIN IMMEDIATE")
            sql = "BEGIN IMMEDIATE"
        else:
            sql = "SELECT * FROM missing_table"
        with pytest.raises(sqlite3.Error) as info:
            conn.execute(sql)
        return info.value
    finally:
        holder.close()
        conn.close()


def test_disk_full_and_lock_timeouts_map_to_unavailable(tmp_path: Path) -> None:
    full = real_error(tmp_path, "full")
    assert "full" in str(full)
    locked = real_error(tmp_path, "locked")
    assert "locked" in str(locked)
    for exc in (full, locked, OSError(errno.ENOSPC, "No space left on device")):
        mapped = translate_sqlite_error(exc)
        assert isinstance(mapped, Unavailable)
        assert mapped.status == 503
        assert mapped.retry_after == RETRY_AFTER_S
        assert mapped.detail == DETAIL


def test_other_failures_map_to_ledger_error(tmp_path: Path) -> None:
    for exc in (real_error(tmp_path, "other"), OSError(errno.EACCES, "Permission denied")):
        mapped = translate_sqlite_error(exc)
        assert type(mapped) is LedgerError
        assert mapped.status == 500
        assert mapped.detail == DETAIL


# --- pending requests ---------------------------------------------------------------------------


def test_pending_lifecycle(ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey) -> None:
    csr = make_csr(key)
    digest = public_key_sha256(key.public_key())
    request = ledger.add_pending(
        csr, label="routers", operation="simpleenroll", requester="bob", auth_method="basic"
    )
    assert request.status is PendingStatus.PENDING
    assert request.subject == "CN=device-1"
    assert request.public_key_sha256 == digest
    assert x509.load_pem_x509_csr(request.csr_pem.encode()) == csr
    assert ledger.get_pending(request.id) == request
    assert ledger.find_pending("routers", digest, "CN=device-1") == request
    assert ledger.find_pending("routers", digest.upper(), "CN=device-1") == request
    assert ledger.find_pending("other", digest, "CN=device-1") is None
    assert ledger.find_pending("routers", digest, "CN=device-2") is None
    assert ledger.list_pending(PendingStatus.PENDING) == [request]

    cert = make_cert(key)
    ledger.record(make_entry(cert, label="routers"))
    assert ledger.claim_pending(request.id, holder="a", lease_seconds=60) is None  # not approved
    with pytest.raises(PendingStateError):
        ledger.mark_pending_issued(request.id, cert.serial_number, holder="a")
    approved = ledger.decide_pending(request.id, True, "known device")
    assert approved.status is PendingStatus.APPROVED
    assert approved.reason == "known device"
    assert approved.decided_at is not None
    assert (approved.claimed_by, approved.claimed_at) == (None, None)
    with pytest.raises(PendingStateError) as info:
        ledger.decide_pending(request.id, False)
    assert info.value.request == approved
    with pytest.raises(PendingStateError, match="is approved, not issuing"):
        ledger.mark_pending_issued(request.id, cert.serial_number, holder="a")  # not claimed

    before = datetime.now(timezone.utc)
    claimed = ledger.claim_pending(request.id, holder="a", lease_seconds=60)
    assert claimed is not None and claimed.status is PendingStatus.ISSUING
    assert claimed.claimed_by == "a"
    assert claimed.claimed_at is not None and before <= claimed.claimed_at
    assert claimed.claimed_at <= datetime.now(timezone.utc)
    assert ledger.get_pending(request.id) == claimed
    assert ledger.list_pending(PendingStatus.ISSUING) == [claimed]
    assert ledger.claim_pending(request.id, holder="a", lease_seconds=60) is None  # held: once
    with pytest.raises(PendingStateError):
        ledger.decide_pending(request.id, False)

    with pytest.raises(UnknownSerial):
        ledger.mark_pending_issued(request.id, cert.serial_number + 1, holder="a")
    with pytest.raises(PendingStateError, match=r"issuing \(claimed by a\), not issuing"):
        ledger.mark_pending_issued(request.id, cert.serial_number, holder="b")
    issued = ledger.mark_pending_issued(request.id, cert.serial_number, holder="a")
    assert issued.status is PendingStatus.ISSUED
    assert issued.serial == cert.serial_number
    assert (issued.claimed_by, issued.claimed_at) == ("a", claimed.claimed_at)
    assert ledger.get_pending(request.id) == issued
    with pytest.raises(PendingStateError):
        ledger.mark_pending_issued(request.id, cert.serial_number, holder="a")
    assert ledger.claim_pending(request.id, holder="c", lease_seconds=1) is None
    assert ledger.list_pending(PendingStatus.PENDING) == []
    assert ledger.list_pending() == [issued]


def test_rejected_requests_cannot_be_issued(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    request = ledger.add_pending(
        make_csr(key), label="", operation="simpleenroll", requester="bob", auth_method="srp"
    )
    rejected = ledger.decide_pending(request.id, False, "unknown device")
    assert rejected.status is PendingStatus.REJECTED
    cert = make_cert(key)
    ledger.record(make_entry(cert))
    assert ledger.claim_pending(request.id, holder="a", lease_seconds=60) is None
    with pytest.raises(PendingStateError):
        ledger.mark_pending_issued(request.id, cert.serial_number, holder="a")
    assert ledger.get_pending(request.id) == rejected
    with pytest.raises(UnknownPendingRequest):
        ledger.decide_pending("no-such-id", True)
    with pytest.raises(UnknownPendingRequest):
        ledger.claim_pending("no-such-id", holder="a", lease_seconds=60)
    with pytest.raises(UnknownPendingRequest):
        ledger.mark_pending_issued("no-such-id", cert.serial_number, holder="a")
    with pytest.raises(ValueError, match="lease_seconds"):
        ledger.claim_pending(request.id, holder="a", lease_seconds=0)
    assert ledger.get_pending("no-such-id") is None


def test_a_claim_that_issued_nothing_is_released_only_by_its_holder(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    request = ledger.add_pending(
        make_csr(key), label="", operation="simpleenroll", requester="bob", auth_method="basic"
    )
    assert not ledger.release_pending(request.id, holder="a")  # pending: nothing to release
    ledger.decide_pending(request.id, True)
    assert not ledger.release_pending(request.id, holder="a")  # approved, not claimed
    assert ledger.claim_pending(request.id, holder="a", lease_seconds=60) is not None
    assert not ledger.release_pending(request.id, holder="b")  # another holder's claim
    claimed = ledger.get_pending(request.id)
    assert claimed is not None and claimed.status is PendingStatus.ISSUING
    assert ledger.release_pending(request.id, holder="a")
    released = ledger.get_pending(request.id)
    assert released is not None and released.status is PendingStatus.APPROVED
    assert (released.claimed_by, released.claimed_at) == (None, None)
    assert not ledger.release_pending(request.id, holder="a")  # once
    # The next claimer takes it at once (no lease to wait out) and issues it.
    assert ledger.claim_pending(request.id, holder="c", lease_seconds=60) is not None
    cert = make_cert(key)
    ledger.record(make_entry(cert))
    ledger.mark_pending_issued(request.id, cert.serial_number, holder="c")
    assert not ledger.release_pending(request.id, holder="c")  # issued stays issued
    with pytest.raises(UnknownPendingRequest):
        ledger.release_pending("no-such-id", holder="a")


def test_poll_identifiers_are_kept_per_label_requester_and_fingerprint(db_path: Path) -> None:
    with SqliteLedger(db_path) as ledger:
        assert ledger.poll_id("ra", "bob", "f1") is None
        ledger.keep_poll("ra", "bob", "f1", "poll-1")
        assert ledger.poll_id("ra", "bob", "f1") == "poll-1"
        for elsewhere in (("", "bob", "f1"), ("ra", "eve", "f1"), ("ra", "bob", "f2")):
            assert ledger.poll_id(*elsewhere) is None
        ledger.keep_poll("ra", "bob", "f1", "poll-2")  # the CA gave a new identifier
        assert ledger.poll_id("ra", "bob", "f1") == "poll-2"
    # Kept across a restart, and seen by another process's connection at once.
    with SqliteLedger(db_path) as reopened, SqliteLedger(db_path) as other:
        assert reopened.poll_id("ra", "bob", "f1") == "poll-2"
        other.forget_poll("ra", "bob", "f1")
        assert reopened.poll_id("ra", "bob", "f1") is None
        other.forget_poll("ra", "bob", "f1")  # forgetting twice is harmless


def test_find_pending_returns_the_newest(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    csr = make_csr(key)
    args = {"label": "", "operation": "simpleenroll", "requester": "b", "auth_method": "srp"}
    first = ledger.add_pending(csr, **args)
    ledger.decide_pending(first.id, False)
    second = ledger.add_pending(csr, **args)
    found = ledger.find_pending("", public_key_sha256(key.public_key()), "CN=device-1")
    assert found == second
    assert [r.id for r in ledger.list_pending()] == [first.id, second.id]


def test_a_match_replaces_the_key_hash_for_finding_retries(
    ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    # /serverkeygen ignores the CSR key (RFC 7030 §4.4.1): the service passes its own match.
    match = "ab" * 32
    request = ledger.add_pending(
        make_csr(key),
        label="l",
        operation="serverkeygen",
        requester="b",
        auth_method="basic",
        match=match,
    )
    assert request.public_key_sha256 == match
    assert ledger.find_pending("l", match, "CN=device-1") == request
    assert ledger.find_pending("l", public_key_sha256(key.public_key()), "CN=device-1") is None


def test_concurrent_decisions_let_exactly_one_win(
    db_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    # Three deciders: two threads sharing one ledger and one on its own connection.
    shared, other = SqliteLedger(db_path), SqliteLedger(db_path)
    for _ in range(10):
        request = shared.add_pending(
            make_csr(key), label="", operation="simpleenroll", requester="b", auth_method="srp"
        )
        wins: list[bool] = []

        def decide(index: int, request_id: str = request.id, wins: list[bool] = wins) -> None:
            target = other if index == 2 else shared
            result = target.decide_pending(request_id, index % 2 == 0, f"decider {index}")
            wins.append(result.status is PendingStatus.APPROVED)

        errors = run_threads(3, decide)
        assert len(wins) == 1
        assert len(errors) == 2
        assert all(isinstance(e, PendingStateError) for e in errors)
        final = shared.get_pending(request.id)
        assert final is not None
        assert final.status is (PendingStatus.APPROVED if wins[0] else PendingStatus.REJECTED)
    shared.close()
    other.close()


def approved_request(ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey) -> str:
    request = ledger.add_pending(
        make_csr(key), label="", operation="simpleenroll", requester="b", auth_method="srp"
    )
    ledger.decide_pending(request.id, True)
    return request.id


def backdate_claim(db_path: Path, request_id: str, seconds: int) -> None:
    """Make the request's claim `seconds` older, as if its holder had stalled that long."""
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        [claimed_at] = raw.execute(
            "SELECT claimed_at FROM pending_requests WHERE id = ?", (request_id,)
        ).fetchone()
        earlier = datetime.fromisoformat(claimed_at) - timedelta(seconds=seconds)
        raw.execute(
            "UPDATE pending_requests SET claimed_at = ? WHERE id = ?",
            (earlier.isoformat(timespec="microseconds"), request_id),
        )
    finally:
        raw.close()


def test_concurrent_claims_across_connections_let_exactly_one_win(
    db_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    # Two connections to one file stand for two processes; three threads on each.
    ledgers = (SqliteLedger(db_path), SqliteLedger(db_path))
    try:
        for _ in range(10):
            request_id = approved_request(ledgers[0], key)
            claims: list[str] = []

            def claim(index: int, request_id: str = request_id, claims: list[str] = claims) -> None:
                holder = f"holder-{index}"
                if ledgers[index % 2].claim_pending(request_id, holder=holder, lease_seconds=60):
                    claims.append(holder)

            assert run_threads(6, claim) == []
            assert len(claims) == 1
            final = ledgers[1].get_pending(request_id)
            assert final is not None and final.status is PendingStatus.ISSUING
            assert final.claimed_by == claims[0]
    finally:
        for opened in ledgers:
            opened.close()


def test_an_expired_claim_can_be_taken_over_and_only_the_new_holder_marks(
    db_path: Path, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = approved_request(ledger, key)
    first = ledger.claim_pending(request_id, holder="dead", lease_seconds=60)
    assert first is not None
    assert ledger.claim_pending(request_id, holder="new", lease_seconds=60) is None
    backdate_claim(db_path, request_id, 30)
    assert ledger.claim_pending(request_id, holder="new", lease_seconds=60) is None  # still live
    backdate_claim(db_path, request_id, 31)
    taken = ledger.claim_pending(request_id, holder="new", lease_seconds=60)
    assert taken is not None and taken.status is PendingStatus.ISSUING
    assert taken.claimed_by == "new"
    assert first.claimed_at is not None and taken.claimed_at is not None
    assert taken.claimed_at > first.claimed_at
    late, fresh = make_cert(key), make_cert(key)
    ledger.record(make_entry(late))
    ledger.record(make_entry(fresh))
    with pytest.raises(PendingStateError) as info:
        ledger.mark_pending_issued(request_id, late.serial_number, holder="dead")
    assert info.value.request == taken
    issued = ledger.mark_pending_issued(request_id, fresh.serial_number, holder="new")
    assert (issued.status, issued.serial) == (PendingStatus.ISSUED, fresh.serial_number)


def test_a_holder_whose_lease_ran_out_may_still_mark_when_nobody_took_over(
    db_path: Path, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = approved_request(ledger, key)
    assert ledger.claim_pending(request_id, holder="slow", lease_seconds=60) is not None
    backdate_claim(db_path, request_id, 3600)
    cert = make_cert(key)
    ledger.record(make_entry(cert))
    issued = ledger.mark_pending_issued(request_id, cert.serial_number, holder="slow")
    assert issued.status is PendingStatus.ISSUED and issued.claimed_by == "slow"


def test_a_version_2_ledger_is_migrated_keeping_its_requests(
    db_path: Path, key: ec.EllipticCurvePrivateKey
) -> None:
    from python_est.ledger.schema import MIGRATIONS

    db_path.parent.mkdir()
    raw = sqlite3.connect(db_path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    for statements in MIGRATIONS[:2]:
        for statement in statements:
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    columns = (
        "id, created_at, label, operation, requester, auth_method, subject, public_key_sha256,"
        " csr_pem, status"
    )
    # Same creation time: the newest is the one inserted last (rowid order must survive).
    for request_id, status in (("old", "approved"), ("new", "pending")):
        raw.execute(
            f"INSERT INTO pending_requests ({columns}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                request_id,
                T0.isoformat(),
                "",
                "simpleenroll",
                "b",
                "srp",
                "CN=device-1",
                public_key_sha256(key.public_key()),
                make_csr(key).public_bytes(serialization.Encoding.PEM).decode(),
                status,
            ),
        )
    with pytest.raises(sqlite3.IntegrityError):
        raw.execute("UPDATE pending_requests SET status = 'issuing' WHERE id = 'old'")
    raw.close()
    with SqliteLedger(db_path) as ledger:
        found = ledger.find_pending("", public_key_sha256(key.public_key()), "CN=device-1")
        assert found is not None and found.id == "new"
        assert [r.id for r in ledger.list_pending()] == ["old", "new"]
        claimed = ledger.claim_pending("old", holder="a", lease_seconds=60)
        assert claimed is not None and claimed.status is PendingStatus.ISSUING
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 3
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"pending_match", "pending_status"} <= indexes
    finally:
        raw.close()
