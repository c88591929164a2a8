"""ClientChainValidator: which presented client chains authenticate someone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from python_est.ca import CertificateAuthority
from python_est.errors import LedgerError, Unavailable
from python_est.keys import KeyType
from python_est.oids import ID_KP_CMC_RA
from python_est.policy import ClientChainValidator

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Unit CA", key_type=KeyType.EC_P256, validity_days=30, issuing_ca=True
    )


def never_revoked(serial: int) -> bool:
    return False


def validator(
    ca: CertificateAuthority, is_revoked: Callable[[int], bool] = never_revoked
) -> ClientChainValidator:
    return ClientChainValidator([ca.root], is_revoked)


def build(
    subject: str,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    *,
    ca: bool = False,
    eku: list[x509.ObjectIdentifier] | None = None,
    start: datetime | None = None,
    days: int = 10,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    start = start or datetime.now(timezone.utc) - timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def test_leaf_with_its_intermediate_is_valid(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")
    result = validator(ca).validate([leaf, ca.certificate])
    assert result.valid and result.reason == ""
    assert not result.is_ra
    assert result.leaf == leaf
    assert result.chain == (leaf, ca.certificate)


def test_missing_intermediate_breaks_the_chain(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")
    result = validator(ca).validate([leaf])
    assert not result.valid and "validation failed" in result.reason


def test_known_intermediate_completes_a_leaf_only_chain(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")
    known = ClientChainValidator([ca.root], never_revoked, intermediates=[ca.certificate])
    assert known.validate([leaf]).valid
    # Knowing an intermediate does not make it a trust anchor.
    other = CertificateAuthority.create(
        common_name="Other", key_type=KeyType.EC_P256, validity_days=30, issuing_ca=True
    )
    stranger = ClientChainValidator([other.root], never_revoked, intermediates=[ca.certificate])
    assert not stranger.validate([leaf]).valid


def test_issuing_ca_as_anchor_needs_no_intermediate(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")
    assert ClientChainValidator([ca.certificate], never_revoked).validate([leaf]).valid


def test_ra_eku_is_detected(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(
        common_name="ra", extended_key_usage=(CLIENT_AUTH, ID_KP_CMC_RA)
    )
    result = validator(ca).validate([leaf, ca.certificate])
    assert result.valid and result.is_ra


def test_self_signed_rogue_is_refused(ca: CertificateAuthority) -> None:
    rogue, _ = build("device", eku=[CLIENT_AUTH])
    result = validator(ca).validate([rogue])
    assert not result.valid and "validation failed" in result.reason


def test_certificate_of_another_ca_is_refused(ca: CertificateAuthority) -> None:
    other = CertificateAuthority.create(
        common_name="Unit CA", key_type=KeyType.EC_P256, validity_days=30
    )
    leaf, _ = other.issue_client_certificate(common_name="device")
    assert not validator(ca).validate([leaf, other.certificate]).valid


@pytest.mark.parametrize("offset", [timedelta(days=-2), timedelta(days=400)])
def test_certificate_outside_its_validity_is_refused(
    ca: CertificateAuthority, offset: timedelta
) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device", validity_days=365)
    result = validator(ca).validate([leaf, ca.certificate], now=datetime.now(timezone.utc) + offset)
    assert not result.valid and "not valid at validation time" in result.reason


def test_revoked_certificate_is_refused(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")
    asked: list[int] = []

    def is_revoked(serial: int) -> bool:
        asked.append(serial)
        return True

    result = validator(ca, is_revoked).validate([leaf, ca.certificate])
    assert (result.valid, result.reason) == (False, "revoked")
    assert asked == [leaf.serial_number]


@pytest.mark.parametrize(
    "error", [LedgerError("the certificate ledger is unavailable"), Unavailable("disk full")]
)
def test_unanswered_revocation_fails_closed(ca: CertificateAuthority, error: Exception) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device")

    def is_revoked(serial: int) -> bool:
        raise error

    result = validator(ca, is_revoked).validate([leaf, ca.certificate])
    assert (result.valid, result.reason) == (False, "revocation status unavailable")


def test_server_only_eku_is_refused(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(
        common_name="server", extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,)
    )
    result = validator(ca).validate([leaf, ca.certificate])
    assert not result.valid and "EKU" in result.reason


def test_absent_eku_is_refused(ca: CertificateAuthority) -> None:
    leaf, _ = ca.issue_client_certificate(common_name="device", extended_key_usage=())
    result = validator(ca).validate([leaf, ca.certificate])
    assert (result.valid, result.reason) == (False, "no EKU clientAuth")


def test_ca_certificate_is_not_a_client(ca: CertificateAuthority) -> None:
    assert not validator(ca).validate([ca.certificate]).valid


def test_leaf_signed_by_a_non_ca_is_refused() -> None:
    root, root_key = build("root", ca=True)
    middle, middle_key = build("middle", (root.subject, root_key), eku=[CLIENT_AUTH])
    leaf, _ = build("device", (middle.subject, middle_key), eku=[CLIENT_AUTH])
    relaxed = ClientChainValidator([root], never_revoked)
    assert relaxed.validate([middle]).valid  # the middle one is a fine client itself
    result = relaxed.validate([leaf, middle])
    assert not result.valid and "basicConstraints" in result.reason


def test_ca_without_key_usage_and_leaf_without_san_are_accepted() -> None:
    # Device PKIs often omit these; the Web PKI profile would refuse both.
    root, root_key = build("root", ca=True)
    leaf, _ = build("device", (root.subject, root_key), eku=[CLIENT_AUTH])
    assert ClientChainValidator([root], never_revoked).validate([leaf]).valid


def test_reason_leaves_out_the_certificate_dump() -> None:
    root, _ = build("root", ca=True)
    rogue, _ = build("device", eku=[CLIENT_AUTH])
    reason = ClientChainValidator([root], never_revoked).validate([rogue]).reason
    assert "encountered processing" not in reason and len(reason) <= 200


def test_empty_chain_and_empty_anchors_are_programming_errors(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="empty"):
        validator(ca).validate([])
    with pytest.raises(ValueError, match="trust anchor"):
        ClientChainValidator([], never_revoked)
