"""The embedded CA: creation, loading, and every issuance rule of a profile."""

from __future__ import annotations

import ipaddress
import subprocess
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from python_est import oids
from python_est.ca import (
    CLOCK_SKEW,
    SERIAL_BITS,
    CertificateAuthority,
    certificate_pem,
    load_pem_certificates,
    private_key_pem,
)
from python_est.errors import CaError, InvalidCsr
from python_est.keys import KeyType
from python_est.profile import IssuanceProfile, SanType
from tests.conftest import require_tool

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=timezone.utc)
CA_KINDS = ["rsa", "ec", "chained"]
ALL_SAN_TYPES = frozenset(SanType)
E = TypeVar("E", bound=x509.ExtensionType)
KeyMaker = Callable[[], CertificateIssuerPrivateKeyTypes]


# --- fixtures: keys are expensive, so every CA and RSA key is made once per module ---


@pytest.fixture(scope="module")
def rsa_ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Test RSA CA", key_type=KeyType.RSA_2048, validity_days=3650
    )


@pytest.fixture(scope="module")
def ec_ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Test EC CA", key_type=KeyType.EC_P256, validity_days=3650, organization="Org"
    )


@pytest.fixture(scope="module")
def chained_ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Test Issuing CA",
        key_type=KeyType.RSA_2048,
        validity_days=3650,
        issuing_ca=True,
        issuing_key_type=KeyType.EC_P384,
    )


@pytest.fixture(params=CA_KINDS)
def any_ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    ca: CertificateAuthority = request.getfixturevalue(f"{request.param}_ca")
    return ca


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make_csr(
    key: CertificateIssuerPrivateKeyTypes,
    *,
    common_name: str | None = "device-1",
    sans: Sequence[x509.GeneralName] = (),
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.CertificateSigningRequest:
    attributes = (
        [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attributes))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def ext(cert: x509.Certificate, kind: type[E]) -> x509.Extension[E]:
    return cert.extensions.get_extension_for_class(kind)


def spki(key: object) -> bytes:
    assert isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# --- creation ---


def test_single_level_ca_is_a_self_signed_root(ec_ca: CertificateAuthority) -> None:
    cert = ec_ca.certificate
    assert ec_ca.chain == (cert,)
    assert ec_ca.root == cert
    assert cert.issuer == cert.subject
    cert.verify_directly_issued_by(cert)
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Org"
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value == x509.BasicConstraints(ca=True, path_length=0)
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert spki(cert.public_key()) == spki(ec_ca.private_key.public_key())


def test_issuing_ca_is_signed_by_the_root_and_chain_lists_both(
    chained_ca: CertificateAuthority,
) -> None:
    issuing, root = chained_ca.chain
    assert chained_ca.certificate == issuing
    assert chained_ca.root == root
    issuing.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    assert issuing.subject.rfc4514_string() == "CN=Test Issuing CA"
    assert root.subject.rfc4514_string() == "CN=Test Issuing CA Root"
    assert isinstance(chained_ca.private_key, ec.EllipticCurvePrivateKey)
    assert isinstance(root.public_key(), rsa.RSAPublicKey)
    assert ext(issuing, x509.BasicConstraints).value.path_length == 0
    assert ext(root, x509.BasicConstraints).value.path_length == 1
    aki = ext(issuing, x509.AuthorityKeyIdentifier).value
    assert isinstance(aki, x509.AuthorityKeyIdentifier)
    assert aki.key_identifier == ext(root, x509.SubjectKeyIdentifier).value.digest
    assert issuing.not_valid_after_utc <= root.not_valid_after_utc


def test_a_root_with_path_length_zero_refuses_an_intermediate(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="pathLenConstraint"):
        ec_ca.create_issuing_ca(common_name="x", key_type=KeyType.EC_P256, validity_days=1)


# --- issuance: keys, subject, signature ---


@pytest.mark.parametrize("leaf", ["rsa_key", "ec_key"])
def test_issue_copies_subject_and_key_and_chains_to_the_ca(
    any_ca: CertificateAuthority, leaf: str, request: pytest.FixtureRequest
) -> None:
    key = request.getfixturevalue(leaf)
    csr = make_csr(key, common_name="device-7")
    cert = any_ca.issue(csr, IssuanceProfile())
    assert cert.subject == csr.subject
    assert cert.issuer == any_ca.certificate.subject
    assert spki(cert.public_key()) == spki(key.public_key())
    cert.verify_directly_issued_by(any_ca.certificate)
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca is False


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("rsa", hashes.SHA256), ("ec", hashes.SHA256), ("chained", hashes.SHA384)],
)
def test_signature_hash_follows_the_ca_key(
    kind: str,
    expected: type[hashes.HashAlgorithm],
    ec_key: ec.EllipticCurvePrivateKey,
    request: pytest.FixtureRequest,
) -> None:
    ca: CertificateAuthority = request.getfixturevalue(f"{kind}_ca")
    cert = ca.issue(make_csr(ec_key), IssuanceProfile())
    assert isinstance(cert.signature_hash_algorithm, expected)


def test_bad_csr_signature_is_refused(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    der = bytearray(make_csr(ec_key).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # the last byte belongs to the signature value
    tampered = x509.load_der_x509_csr(bytes(der))
    with pytest.raises(InvalidCsr, match="CSR signature does not verify") as info:
        ec_ca.issue(tampered, IssuanceProfile())
    assert info.value.status == 400


def test_server_generated_key_replaces_the_csr_key_and_signature(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    der = bytearray(make_csr(ec_key).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01
    tampered = x509.load_der_x509_csr(bytes(der))
    server_key = ec.generate_private_key(ec.SECP384R1())
    cert = ec_ca.issue(tampered, IssuanceProfile(), public_key=server_key.public_key())
    assert spki(cert.public_key()) == spki(server_key.public_key())


@pytest.mark.parametrize(
    ("make_key", "reason"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "1024 bits"),
        (lambda: ec.generate_private_key(ec.SECP224R1()), "secp224r1"),
        (lambda: ec.generate_private_key(ec.BrainpoolP256R1()), "brainpoolP256r1"),
        (lambda: dsa.generate_private_key(key_size=1024), "not supported"),
    ],
    ids=["rsa-1024", "secp224r1", "brainpoolP256r1", "dsa"],
)
def test_weak_or_unsupported_keys_are_refused(
    ec_ca: CertificateAuthority, make_key: KeyMaker, reason: str
) -> None:
    key = make_key()
    csr = make_csr(key)
    with pytest.raises(InvalidCsr, match=reason) as info:
        ec_ca.issue(csr, IssuanceProfile())
    assert info.value.status == 400
    with pytest.raises(InvalidCsr, match=reason):
        ec_ca.issue(csr, IssuanceProfile(), public_key=key.public_key())


@pytest.mark.parametrize(
    "make_key",
    [lambda: ec.generate_private_key(ec.SECP521R1()), ed25519.Ed25519PrivateKey.generate],
    ids=["secp521r1", "ed25519"],
)
def test_strong_non_default_keys_are_accepted(
    ec_ca: CertificateAuthority, make_key: KeyMaker
) -> None:
    key = make_key()
    cert = ec_ca.issue(make_csr(key), IssuanceProfile())
    assert spki(cert.public_key()) == spki(key.public_key())


def test_requested_extensions_other_than_san_are_ignored(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    csr = make_csr(
        ec_key,
        extensions=[
            x509.BasicConstraints(ca=True, path_length=None),
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]),
        ],
    )
    cert = ec_ca.issue(csr, IssuanceProfile())
    assert ext(cert, x509.BasicConstraints).value.ca is False
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [oids.ID_KP_CLIENT_AUTH]


def test_key_identifiers_link_the_certificate_to_its_issuer(
    any_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = any_ca.issue(make_csr(ec_key), IssuanceProfile())
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(ec_key.public_key())
    aki = ext(cert, x509.AuthorityKeyIdentifier).value
    assert aki.key_identifier == ext(any_ca.certificate, x509.SubjectKeyIdentifier).value.digest


# --- validity ---


def test_validity_is_backdated_for_skew_and_lasts_the_profile_days(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    ca = CertificateAuthority.create_root(
        common_name="Dated CA",
        key_type=KeyType.EC_P256,
        validity_days=3650,
        now=NOW - timedelta(days=1),
    )
    cert = ca.issue(make_csr(ec_key), IssuanceProfile(validity_days=30), now=NOW)
    assert cert.not_valid_before_utc == NOW - CLOCK_SKEW
    assert cert.not_valid_after_utc == NOW + timedelta(days=30)


def test_validity_never_leaves_the_issuing_ca_validity(ec_key: ec.EllipticCurvePrivateKey) -> None:
    ca = CertificateAuthority.create_root(
        common_name="Short CA", key_type=KeyType.EC_P256, validity_days=10, now=NOW
    )
    cert = ca.issue(make_csr(ec_key), IssuanceProfile(validity_days=365), now=NOW)
    assert cert.not_valid_after_utc == ca.certificate.not_valid_after_utc
    assert cert.not_valid_before_utc == ca.certificate.not_valid_before_utc


def test_an_expired_ca_refuses_to_issue(ec_key: ec.EllipticCurvePrivateKey) -> None:
    ca = CertificateAuthority.create_root(
        common_name="Old CA", key_type=KeyType.EC_P256, validity_days=1, now=NOW
    )
    with pytest.raises(CaError, match="expired") as info:
        ca.issue(make_csr(ec_key), IssuanceProfile(), now=NOW + timedelta(days=2))
    assert info.value.status == 500


# --- keyUsage and extendedKeyUsage ---


@pytest.mark.parametrize(
    ("leaf", "usages", "expected"),
    [
        (
            "rsa_key",
            {"digital_signature", "key_encipherment"},
            {"digital_signature", "key_encipherment"},
        ),
        ("ec_key", {"digital_signature", "key_encipherment"}, {"digital_signature"}),
        ("ec_key", {"digital_signature", "key_agreement"}, {"digital_signature", "key_agreement"}),
        (
            "ed25519",
            {"digital_signature", "key_agreement", "key_encipherment"},
            {"digital_signature"},
        ),
        (
            "rsa_key",
            {"content_commitment", "data_encipherment"},
            {"content_commitment", "data_encipherment"},
        ),
    ],
)
def test_key_usage_comes_from_the_profile_minus_bits_the_key_cannot_use(
    rsa_ca: CertificateAuthority,
    leaf: str,
    usages: set[str],
    expected: set[str],
    request: pytest.FixtureRequest,
) -> None:
    key = (
        ed25519.Ed25519PrivateKey.generate() if leaf == "ed25519" else request.getfixturevalue(leaf)
    )
    cert = rsa_ca.issue(make_csr(key), IssuanceProfile(key_usage=frozenset(usages)))
    usage = ext(cert, x509.KeyUsage)
    assert usage.critical
    names = ["digital_signature", "content_commitment", "key_encipherment", "data_encipherment"]
    names.append("key_agreement")
    assert {name for name in names if getattr(usage.value, name)} == expected


@pytest.mark.parametrize("usages", [frozenset(), frozenset({"key_encipherment"})])
def test_no_key_usage_extension_when_no_bit_remains(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey, usages: frozenset[str]
) -> None:
    cert = ec_ca.issue(make_csr(ec_key), IssuanceProfile(key_usage=usages))
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.KeyUsage)


@pytest.mark.parametrize("usages", [{"key_cert_sign"}, {"digital_signature", "no_such_bit"}])
def test_unusable_profile_key_usage_is_a_ca_error(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey, usages: set[str]
) -> None:
    with pytest.raises(CaError) as info:
        ec_ca.issue(make_csr(ec_key), IssuanceProfile(key_usage=frozenset(usages)))
    assert info.value.status == 500


@pytest.mark.parametrize(
    "ekus",
    [
        (oids.ID_KP_CLIENT_AUTH,),
        (oids.ID_KP_SERVER_AUTH, oids.ID_KP_CLIENT_AUTH),
        (oids.ID_KP_CMC_RA,),
    ],
)
def test_extended_key_usage_comes_from_the_profile(
    ec_ca: CertificateAuthority,
    ec_key: ec.EllipticCurvePrivateKey,
    ekus: tuple[ObjectIdentifier, ...],
) -> None:
    cert = ec_ca.issue(make_csr(ec_key), IssuanceProfile(extended_key_usage=ekus))
    extension = ext(cert, x509.ExtendedKeyUsage)
    assert not extension.critical
    assert tuple(extension.value) == ekus


def test_no_eku_extension_for_an_empty_profile_list(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = ec_ca.issue(make_csr(ec_key), IssuanceProfile(extended_key_usage=()))
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, x509.ExtendedKeyUsage)


# --- subjectAltName ---

SAN_EXAMPLES: list[tuple[SanType, x509.GeneralName]] = [
    (SanType.DNS, x509.DNSName("device.example.com")),
    (SanType.IP, x509.IPAddress(ipaddress.ip_address("192.0.2.7"))),
    (SanType.IP, x509.IPAddress(ipaddress.ip_address("2001:db8::7"))),
    (SanType.EMAIL, x509.RFC822Name("ops@example.com")),
    (SanType.URI, x509.UniformResourceIdentifier("urn:uuid:0d8e1f00-3b7a-4a1e-9c61-1f2e3d4c5b6a")),
]


@pytest.mark.parametrize(("kind", "name"), SAN_EXAMPLES)
def test_each_permitted_san_kind_is_copied(
    ec_ca: CertificateAuthority,
    ec_key: ec.EllipticCurvePrivateKey,
    kind: SanType,
    name: x509.GeneralName,
) -> None:
    profile = IssuanceProfile(san_types=frozenset({kind}))
    cert = ec_ca.issue(make_csr(ec_key, sans=[name]), profile)
    san = ext(cert, x509.SubjectAlternativeName)
    assert list(san.value) == [name]
    assert not san.critical


@pytest.mark.parametrize(("kind", "name"), SAN_EXAMPLES)
def test_a_san_kind_outside_the_profile_is_refused(
    ec_ca: CertificateAuthority,
    ec_key: ec.EllipticCurvePrivateKey,
    kind: SanType,
    name: x509.GeneralName,
) -> None:
    profile = IssuanceProfile(san_types=ALL_SAN_TYPES - {kind})
    with pytest.raises(InvalidCsr, match=f"kind {kind.value} is not allowed") as info:
        ec_ca.issue(make_csr(ec_key, sans=[x509.DNSName("ok.example"), name]), profile)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("name", "label"),
    [
        (x509.OtherName(ObjectIdentifier("1.3.6.1.4.1.311.20.2.3"), b"\x0c\x03abc"), "otherName"),
        (
            x509.DirectoryName(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])),
            "directoryName",
        ),
        (x509.RegisteredID(ObjectIdentifier("1.2.3.4")), "registeredID"),
    ],
)
def test_other_san_kinds_are_refused_by_name(
    ec_ca: CertificateAuthority,
    ec_key: ec.EllipticCurvePrivateKey,
    name: x509.GeneralName,
    label: str,
) -> None:
    with pytest.raises(InvalidCsr, match=f"kind {label} is not allowed"):
        ec_ca.issue(make_csr(ec_key, sans=[name]), IssuanceProfile(san_types=ALL_SAN_TYPES))


@pytest.mark.parametrize("value", ["", " ", "a b.example"])
def test_blank_or_spaced_dns_names_are_refused(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey, value: str
) -> None:
    with pytest.raises(InvalidCsr, match="empty or contains spaces"):
        ec_ca.issue(make_csr(ec_key, sans=[x509.DNSName(value)]), IssuanceProfile())


def test_too_many_sans_are_refused_and_the_limit_itself_is_fine(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    profile = IssuanceProfile(max_sans=2)
    names = [x509.DNSName(f"n{i}.example") for i in range(3)]
    cert = ec_ca.issue(make_csr(ec_key, sans=names[:2]), profile)
    assert len(ext(cert, x509.SubjectAlternativeName).value) == 2
    with pytest.raises(InvalidCsr, match="3 subjectAltNames") as info:
        ec_ca.issue(make_csr(ec_key, sans=names), profile)
    assert info.value.status == 400


def test_empty_subject_with_san_makes_the_san_critical(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = ec_ca.issue(
        make_csr(ec_key, common_name=None, sans=[x509.DNSName("only-san.example")]),
        IssuanceProfile(),
    )
    assert len(cert.subject) == 0
    assert ext(cert, x509.SubjectAlternativeName).critical


def test_empty_subject_without_san_is_refused(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    with pytest.raises(InvalidCsr, match="neither a subject nor a subjectAltName"):
        ec_ca.issue(make_csr(ec_key, common_name=None), IssuanceProfile())


# --- serial numbers ---


def test_serials_are_random_positive_long_and_distinct(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    csr = make_csr(ec_key)
    serials = [ec_ca.issue(csr, IssuanceProfile()).serial_number for _ in range(200)]
    assert len(set(serials)) == len(serials)
    assert all(serial > 0 and serial.bit_length() == SERIAL_BITS for serial in serials)
    assert SERIAL_BITS >= 127


def test_an_explicit_serial_is_used(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    cert = ec_ca.issue(make_csr(ec_key), IssuanceProfile(), serial=0x1234)
    assert cert.serial_number == 0x1234


@pytest.mark.parametrize("serial", [0, -1, 1 << SERIAL_BITS])
def test_an_out_of_range_serial_is_rejected(
    ec_ca: CertificateAuthority, ec_key: ec.EllipticCurvePrivateKey, serial: int
) -> None:
    with pytest.raises(ValueError, match="serial"):
        ec_ca.issue(make_csr(ec_key), IssuanceProfile(), serial=serial)


# --- helpers for TLS certificates ---


@pytest.mark.parametrize(
    ("key_type", "expect_key_encipherment"), [(KeyType.RSA_2048, True), (KeyType.EC_P256, False)]
)
def test_server_certificate_has_server_auth_and_the_names(
    chained_ca: CertificateAuthority, key_type: KeyType, expect_key_encipherment: bool
) -> None:
    cert, key = chained_ca.issue_server_certificate(
        common_name="est.example",
        dns_names=["est.example", "localhost"],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=key_type,
        validity_days=90,
    )
    assert spki(cert.public_key()) == spki(key.public_key())
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    usage = ext(cert, x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment is expect_key_encipherment
    san = ext(cert, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["est.example", "localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([chained_ca.root]))
        .build_server_verifier(x509.DNSName("est.example"))
    )
    assert verifier.verify(cert, [chained_ca.certificate])[-1] == chained_ca.root


def test_server_certificate_needs_a_name(ec_ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="at least one"):
        ec_ca.issue_server_certificate(
            common_name="x",
            dns_names=[],
            ip_addresses=[],
            key_type=KeyType.EC_P256,
            validity_days=1,
        )


def test_client_and_ra_certificates_validate_as_client_certificates(
    chained_ca: CertificateAuthority,
) -> None:
    client, _ = chained_ca.issue_client_certificate(
        common_name="client-1", dns_names=["c1.example"]
    )
    ra, _ = chained_ca.issue_client_certificate(
        common_name="ra-1",
        extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, oids.ID_KP_CMC_RA),
        dns_names=["ra.example"],
    )
    assert list(ext(ra, x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH,
        oids.ID_KP_CMC_RA,
    ]
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([chained_ca.root]))
        .build_client_verifier()
    )
    for cert in (client, ra):
        assert verifier.verify(cert, [chained_ca.certificate]).chain[-1] == chained_ca.root


# --- PEM ---


def test_pem_helpers_round_trip(chained_ca: CertificateAuthority) -> None:
    bundle = b"".join(certificate_pem(cert) for cert in chained_ca.chain)
    assert load_pem_certificates(bundle) == list(chained_ca.chain)
    assert load_pem_certificates(b"") == []
    key_pem = private_key_pem(chained_ca.private_key)
    assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    loaded = serialization.load_pem_private_key(key_pem, password=None)
    assert spki(loaded.public_key()) == spki(chained_ca.private_key.public_key())


@pytest.mark.parametrize("kind", CA_KINDS)
def test_from_pem_round_trip_issues_like_the_original(
    kind: str, ec_key: ec.EllipticCurvePrivateKey, request: pytest.FixtureRequest
) -> None:
    original: CertificateAuthority = request.getfixturevalue(f"{kind}_ca")
    loaded = CertificateAuthority.from_pem(
        certificate_pem(original.certificate),
        private_key_pem(original.private_key),
        b"".join(certificate_pem(cert) for cert in original.chain[1:]),
    )
    assert loaded.chain == original.chain
    assert loaded.root == original.root
    cert = loaded.issue(make_csr(ec_key), IssuanceProfile())
    cert.verify_directly_issued_by(original.certificate)


def test_from_pem_orders_the_chain_whatever_order_it_came_in(
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    root = CertificateAuthority.create_root(
        common_name="Deep Root", key_type=KeyType.EC_P256, validity_days=100, path_length=None
    )
    middle = root.create_issuing_ca(
        common_name="Middle", key_type=KeyType.EC_P256, validity_days=50, path_length=1
    )
    issuing = middle.create_issuing_ca(
        common_name="Issuing", key_type=KeyType.EC_P256, validity_days=20
    )
    assert ext(issuing.certificate, x509.BasicConstraints).value.path_length == 0
    assert issuing.chain == (issuing.certificate, middle.certificate, root.certificate)
    # The root rides along in the certificate PEM; the chain PEM lists it before the middle.
    loaded = CertificateAuthority.from_pem(
        certificate_pem(issuing.certificate) + certificate_pem(root.certificate),
        private_key_pem(issuing.private_key),
        certificate_pem(root.certificate) + certificate_pem(middle.certificate),
    )
    assert loaded.chain == issuing.chain
    loaded.issue(make_csr(ec_key), IssuanceProfile()).verify_directly_issued_by(issuing.certificate)


def _pem_case(
    name: str, ca: CertificateAuthority, other: CertificateAuthority
) -> tuple[bytes, bytes, bytes]:
    cert, key, chain = certificate_pem(ca.certificate), private_key_pem(ca.private_key), b""
    if name == "mismatched key":
        key = private_key_pem(other.private_key)
    elif name == "not a CA":
        leaf, leaf_key = other.issue_client_certificate(common_name="leaf")
        cert, key, chain = (
            certificate_pem(leaf),
            private_key_pem(leaf_key),
            certificate_pem(other.root),
        )
    elif name == "missing root":
        chain = b""
    elif name == "foreign certificate in chain":
        chain = certificate_pem(ca.root) + certificate_pem(other.root)
    elif name == "encrypted key":
        key = ca.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    elif name == "garbage key":
        key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    elif name == "ed25519 key":
        key = private_key_pem(ed25519.Ed25519PrivateKey.generate())
    elif name == "no certificate":
        cert = b""
    return cert, key, chain


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("mismatched key", "does not match"),
        ("not a CA", "not a CA certificate"),
        ("missing root", "not a self-signed root"),
        ("foreign certificate in chain", "not on the chain"),
        ("encrypted key", "encrypted"),
        ("garbage key", "not a readable PEM private key"),
        ("ed25519 key", "not supported"),
        ("no certificate", "no certificate"),
    ],
)
def test_from_pem_rejects_unusable_material_with_a_clear_message(
    chained_ca: CertificateAuthority, ec_ca: CertificateAuthority, case: str, message: str
) -> None:
    cert, key, chain = _pem_case(case, chained_ca, ec_ca)
    with pytest.raises(ValueError, match=message):
        CertificateAuthority.from_pem(cert, key, chain)


# --- interop: the openssl command line accepts what we issue ---


def _openssl() -> str:
    return require_tool("openssl")


def _openssl_verify(
    openssl: str,
    tmp_path: Path,
    root: x509.Certificate,
    untrusted: Sequence[x509.Certificate],
    leaf: x509.Certificate,
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "root.pem").write_bytes(certificate_pem(root))
    (tmp_path / "leaf.pem").write_bytes(certificate_pem(leaf))
    args = [
        openssl,
        "verify",
        "-x509_strict",
        "-purpose",
        "sslclient",
        "-CAfile",
        str(tmp_path / "root.pem"),
    ]
    if untrusted:
        (tmp_path / "issuing.pem").write_bytes(b"".join(certificate_pem(c) for c in untrusted))
        args += ["-untrusted", str(tmp_path / "issuing.pem")]
    return subprocess.run(
        [*args, str(tmp_path / "leaf.pem")], capture_output=True, text=True, timeout=30, check=False
    )


@pytest.mark.interop
@pytest.mark.parametrize("leaf", ["rsa_key", "ec_key"])
def test_openssl_verifies_issued_certificates(
    any_ca: CertificateAuthority, leaf: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    openssl = _openssl()
    csr = make_csr(request.getfixturevalue(leaf), sans=[x509.DNSName("device.example")])
    cert = any_ca.issue(csr, IssuanceProfile())
    result = _openssl_verify(openssl, tmp_path, any_ca.root, any_ca.chain[:-1], cert)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


@pytest.mark.interop
def test_openssl_rejects_a_certificate_from_another_root(
    chained_ca: CertificateAuthority,
    ec_ca: CertificateAuthority,
    ec_key: ec.EllipticCurvePrivateKey,
    tmp_path: Path,
) -> None:
    openssl = _openssl()
    cert = chained_ca.issue(make_csr(ec_key), IssuanceProfile())
    result = _openssl_verify(openssl, tmp_path, ec_ca.root, chained_ca.chain[:-1], cert)
    assert result.returncode != 0
