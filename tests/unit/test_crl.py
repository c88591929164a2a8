"""CRLs: building and signing (ca.crl), the CDP extension, the ledger counter, publishing."""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est.ca import (
    REASON_FLAGS,
    CaMaterial,
    CertificateAuthority,
    Revocation,
    build_crl,
    can_sign_crls,
    crl_number,
)
from python_est.keys import KeyType
from python_est.ledger import REVOCATION_REASONS, SCHEMA_VERSION, IssuedCertificate, SqliteLedger
from python_est.ledger.schema import MIGRATIONS
from python_est.ops.revocation import CrlPublisher
from python_est.profile import IssuanceProfile

T = datetime(2024, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
CA_START = datetime(2020, 1, 1, tzinfo=timezone.utc)


def make_ca(key_type: KeyType = KeyType.EC_P256, name: str = "Test CA") -> CertificateAuthority:
    return CertificateAuthority.create_root(
        common_name=name, key_type=key_type, validity_days=3650, now=CA_START
    )


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return make_ca()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def issue(
    ca: CertificateAuthority,
    ledger: SqliteLedger,
    cn: str,
    *,
    at: datetime = T - timedelta(days=10),
    days: int = 365,
) -> x509.Certificate:
    cert, _ = ca.issue_client_certificate(common_name=cn, validity_days=days, now=at)
    ledger.record(
        IssuedCertificate.from_certificate(
            cert, requester="admin", auth_method="admin", label="", operation="simpleenroll"
        )
    )
    return cert


# --- build_crl -------------------------------------------------------------------------------


def test_build_crl_is_a_signed_complete_version_2_crl(ca: CertificateAuthority) -> None:
    revoked_at = T - timedelta(hours=3)
    crl = build_crl(
        ca,
        [Revocation(500, revoked_at, "unspecified"), Revocation(7, revoked_at, "keyCompromise")],
        crl_number=42,
        next_update_hours=24,
        now=T,
    )
    assert crl.issuer == ca.certificate.subject
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.last_update_utc == T.replace(microsecond=0)
    assert crl.next_update_utc == T.replace(microsecond=0) + timedelta(hours=24)
    assert crl_number(crl) == 42
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert [entry.serial_number for entry in crl] == [7, 500]
    compromised = crl.get_revoked_certificate_by_serial_number(7)
    assert compromised is not None
    assert compromised.revocation_date_utc == revoked_at.replace(microsecond=0)
    reason = compromised.extensions.get_extension_for_class(x509.CRLReason).value
    assert reason.reason is x509.ReasonFlags.key_compromise
    plain = crl.get_revoked_certificate_by_serial_number(500)
    assert plain is not None
    # RFC 5280 §5.3.1: no reasonCode extension rather than "unspecified".
    assert len(plain.extensions) == 0


def test_an_rsa_ca_signs_with_sha256() -> None:
    rsa_ca = make_ca(KeyType.RSA_2048, "RSA CA")
    crl = build_crl(rsa_ca, [], crl_number=1, next_update_hours=1, now=T)
    assert crl.is_signature_valid(rsa_ca.certificate.public_key())  # type: ignore[arg-type]
    assert isinstance(crl.signature_hash_algorithm, hashes.SHA256)
    assert len(crl) == 0


def test_every_ledger_reason_has_a_crl_reason(ca: CertificateAuthority) -> None:
    assert set(REASON_FLAGS) | {"unspecified"} == set(REVOCATION_REASONS)
    entries = [Revocation(i + 1, T, name) for i, name in enumerate(REVOCATION_REASONS)]
    crl = build_crl(ca, entries, crl_number=1, next_update_hours=1, now=T)
    for entry in entries:
        listed = crl.get_revoked_certificate_by_serial_number(entry.serial)
        assert listed is not None
        if entry.reason != "unspecified":
            flag = listed.extensions.get_extension_for_class(x509.CRLReason).value.reason
            assert flag is REASON_FLAGS[entry.reason]


@pytest.mark.parametrize(("number", "hours"), [(0, 1), (-1, 1), (1 << 159, 1), (1, 0), (1, -24)])
def test_bad_number_or_validity_is_refused(
    ca: CertificateAuthority, number: int, hours: int
) -> None:
    with pytest.raises(ValueError):
        build_crl(ca, [], crl_number=number, next_update_hours=hours, now=T)


def test_the_largest_20_octet_number_is_accepted(ca: CertificateAuthority) -> None:
    crl = build_crl(ca, [], crl_number=(1 << 159) - 1, next_update_hours=1, now=T)
    assert crl_number(crl) == (1 << 159) - 1


def _ca_with_key_usage(usage: x509.KeyUsage | None) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Old CA")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(CA_START)
        .not_valid_after(CA_START + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    cert = builder.sign(key, hashes.SHA256())
    return CertificateAuthority(CaMaterial(certificate=cert, private_key=key, chain=(cert,)))


def test_can_sign_crls_follows_the_key_usage(ca: CertificateAuthority) -> None:
    assert can_sign_crls(ca)
    assert can_sign_crls(_ca_with_key_usage(None))
    cert_sign_only = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    assert not can_sign_crls(_ca_with_key_usage(cert_sign_only))


# --- the CRL Distribution Point in issued certificates ---------------------------------------


def _csr() -> x509.CertificateSigningRequest:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    return x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())


def test_issue_adds_a_crl_distribution_point_from_the_profile(ca: CertificateAuthority) -> None:
    url = "https://est.example.net:8443/crl/ca.crl"
    cert = ca.issue(_csr(), IssuanceProfile(crl_urls=(url,)), now=T)
    ext = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    assert not ext.critical
    [point] = list(ext.value)
    assert point.full_name == [x509.UniformResourceIdentifier(url)]
    assert point.reasons is None and point.crl_issuer is None


def test_issue_adds_no_distribution_point_by_default(ca: CertificateAuthority) -> None:
    cert = ca.issue(_csr(), IssuanceProfile(), now=T)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.CRLDistributionPoints)


# --- the ledger counter ----------------------------------------------------------------------


def test_counter_grows_across_connections_and_respects_a_minimum(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    with SqliteLedger(path) as first, SqliteLedger(path) as second:
        assert first.next_number("crl_number") == 1
        assert second.next_number("crl_number") == 2
        assert first.next_number("crl_number", minimum=10) == 10
        assert second.next_number("crl_number", minimum=3) == 11
        assert first.next_number("other") == 1


def test_a_version_1_ledger_is_migrated_to_have_the_meta_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    for statement in MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.close()
    with SqliteLedger(path) as ledger:
        assert ledger.next_number("crl_number") == 1
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 2
    finally:
        raw.close()


# --- CrlPublisher ----------------------------------------------------------------------------


def test_publisher_lists_this_cas_unexpired_revocations_and_writes_0644(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    validity = 24
    revoked = issue(ca, ledger, "revoked")
    ledger.revoke(revoked.serial_number, "keyCompromise", when=T - timedelta(days=1))
    issue(ca, ledger, "still-good")
    foreign = issue(make_ca(name="Earlier CA"), ledger, "foreign")
    ledger.revoke(foreign.serial_number, "superseded", when=T - timedelta(days=1))
    # Expired 2 days ago: it appeared on a CRL issued after its notAfter, so it may go.
    long_gone = issue(ca, ledger, "long-gone", at=T - timedelta(days=3), days=1)
    ledger.revoke(long_gone.serial_number, "unspecified", when=T - timedelta(days=3))
    # Expired 1 hour ago: it must stay for one more regular CRL.
    just_expired = issue(ca, ledger, "just-expired", at=T - timedelta(days=1, hours=1), days=1)
    ledger.revoke(just_expired.serial_number, "unspecified", when=T - timedelta(days=1))

    path = tmp_path / "crl" / "ca.crl"
    publisher = CrlPublisher(ca, ledger, path, validity_hours=validity, clock=Clock(T))
    der = publisher.current()
    crl = x509.load_der_x509_crl(der)
    assert sorted(entry.serial_number for entry in crl) == sorted(
        [revoked.serial_number, just_expired.serial_number]
    )
    assert crl_number(crl) == 1
    assert path.read_bytes() == der
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_publisher_regenerates_after_half_its_validity(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    clock = Clock(T)
    publisher = CrlPublisher(ca, ledger, tmp_path / "ca.crl", validity_hours=24, clock=clock)
    first = publisher.current()
    cert = issue(ca, ledger, "device")
    ledger.revoke(cert.serial_number, "keyCompromise", when=T)
    clock.now = T + timedelta(hours=11, minutes=59)
    assert publisher.current() == first
    assert not publisher.refresh_if_due()
    clock.now = T + timedelta(hours=12)
    assert publisher.refresh_if_due()
    crl = x509.load_der_x509_crl(publisher.current())
    assert crl_number(crl) == 2
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.last_update_utc == clock.now.replace(microsecond=0)


def test_a_newer_crl_from_another_process_is_served_at_once(
    ca: CertificateAuthority, tmp_path: Path
) -> None:
    db = tmp_path / "ledger.sqlite3"
    path = tmp_path / "crl" / "ca.crl"
    with SqliteLedger(db) as server_ledger, SqliteLedger(db) as cli_ledger:
        server = CrlPublisher(ca, server_ledger, path, validity_hours=24, clock=Clock(T))
        cli = CrlPublisher(ca, cli_ledger, path, validity_hours=24, clock=Clock(T))
        assert crl_number(x509.load_der_x509_crl(server.current())) == 1
        cert = issue(ca, cli_ledger, "device")
        cli_ledger.revoke(cert.serial_number, "keyCompromise")
        published = cli.publish()
        assert crl_number(published) == 2
        served = x509.load_der_x509_crl(server.current())
        assert crl_number(served) == 2
        assert served.get_revoked_certificate_by_serial_number(cert.serial_number) is not None


def test_numbers_never_go_below_the_crl_on_file(ca: CertificateAuthority, tmp_path: Path) -> None:
    path = tmp_path / "ca.crl"
    with SqliteLedger(tmp_path / "one.sqlite3") as ledger:
        publisher = CrlPublisher(ca, ledger, path, validity_hours=24, clock=Clock(T))
        for _ in range(3):
            publisher.publish()
    # A ledger restored from an older backup starts its counter again; the file remembers.
    with SqliteLedger(tmp_path / "restored.sqlite3") as restored:
        again = CrlPublisher(ca, restored, path, validity_hours=24, clock=Clock(T))
        assert crl_number(again.publish()) == 4


def test_a_crl_file_of_another_ca_is_replaced(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    path = tmp_path / "ca.crl"
    other = build_crl(make_ca(name="Other CA"), [], crl_number=100, next_update_hours=24, now=T)
    path.write_bytes(other.public_bytes(serialization.Encoding.DER))
    publisher = CrlPublisher(ca, ledger, path, validity_hours=24, clock=Clock(T))
    crl = x509.load_der_x509_crl(publisher.current())
    assert crl.issuer == ca.certificate.subject
    assert crl_number(crl) == 1
    assert path.read_bytes() == publisher.current()


def test_an_unwritable_file_is_logged_and_the_crl_still_served(
    ca: CertificateAuthority,
    ledger: SqliteLedger,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    publisher = CrlPublisher(ca, ledger, blocker / "ca.crl", validity_hours=24, clock=Clock(T))
    with caplog.at_level(logging.WARNING, logger="python_est.crl"):
        der = publisher.current()
    assert crl_number(x509.load_der_x509_crl(der)) == 1
    assert "could not write the CRL" in caplog.text
    with pytest.raises(OSError):
        publisher.publish()
