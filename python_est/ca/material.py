"""CA material: make a new root or issuing CA, or load one from PEM or a token key.

Kept apart from the issuance of `authority.CertificateAuthority`, which builds on the
`CaMaterial` made here; the shared pieces (a certificate builder's names and times, a validity
window inside the issuer's) live here too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from python_est.ca import pem, rules, signer
from python_est.ca.rules import CLOCK_SKEW
from python_est.ca.signer import CaKey, ExternalKey
from python_est.errors import CaError
from python_est.keys import KeyType, generate_private_key


@dataclass(frozen=True)
class CaMaterial:
    """The issuing certificate, its private key, and the chain from it up to the root.

    Attributes:
        certificate: the certificate that signs issued certificates.
        private_key: the key of `certificate`: in memory, or on a token (`ExternalKey`).
        chain: `certificate` first, then each issuer up to and including the self-signed root.
    """

    certificate: x509.Certificate
    private_key: CaKey
    chain: tuple[x509.Certificate, ...]


def new_ca(
    *,
    common_name: str,
    key_type: KeyType,
    validity_days: int,
    issuing_ca: bool = False,
    issuing_key_type: KeyType | None = None,
    organization: str | None = None,
    key: CaKey | None = None,
) -> CaMaterial:
    """A root, or a root and the issuing CA below it (`CertificateAuthority.create`); the CA
    that signs issued certificates, whose root key is discarded with `issuing_ca`."""
    if not issuing_ca:
        return new_root(
            common_name=common_name,
            key_type=key_type,
            validity_days=validity_days,
            organization=organization,
            key=key,
        )
    root = new_root(
        common_name=f"{common_name} Root",
        key_type=key_type,
        validity_days=validity_days,
        organization=organization,
        path_length=1,
    )
    return new_issuing(
        root,
        common_name=common_name,
        key_type=issuing_key_type or key_type,
        validity_days=validity_days,
        organization=organization,
        key=key,
    )


def new_root(
    *,
    common_name: str,
    key_type: KeyType,
    validity_days: int,
    organization: str | None = None,
    path_length: int | None = 0,
    now: datetime | None = None,
    key: CaKey | None = None,
) -> CaMaterial:
    """A self-signed root CA (`CertificateAuthority.create_root`); its chain is itself."""
    if key is None:
        key = generate_private_key(key_type)
    subject = ca_name(common_name, organization)
    not_before = utc(now) - CLOCK_SKEW
    not_after = not_before + timedelta(days=validity_days)
    builder = certificate_builder(subject, subject, key.public_key(), not_before, not_after)
    builder = builder.serial_number(rules.random_serial())
    builder = rules.add_ca_extensions(builder, key.public_key(), path_length, key.public_key())
    cert = signer.sign_certificate(builder, key)
    return CaMaterial(certificate=cert, private_key=key, chain=(cert,))


def new_issuing(
    parent: CaMaterial,
    *,
    common_name: str,
    key_type: KeyType,
    validity_days: int,
    organization: str | None = None,
    path_length: int | None = 0,
    now: datetime | None = None,
    key: CaKey | None = None,
) -> CaMaterial:
    """An intermediate CA signed by `parent` (`CertificateAuthority.create_issuing_ca`).

    Raises:
        ValueError: the parent's pathLenConstraint forbids a CA below it.
    """
    issuer = parent.certificate
    constraints = issuer.extensions.get_extension_for_class(x509.BasicConstraints)
    if constraints.value.path_length == 0:
        raise ValueError("this CA's pathLenConstraint of 0 forbids an intermediate CA")
    if key is None:
        key = generate_private_key(key_type)
    not_before, not_after = validity(issuer, validity_days, utc(now))
    subject = ca_name(common_name, organization)
    builder = certificate_builder(subject, issuer.subject, key.public_key(), not_before, not_after)
    builder = builder.serial_number(rules.random_serial())
    issuer_key = parent.private_key.public_key()
    builder = rules.add_ca_extensions(builder, key.public_key(), path_length, issuer_key)
    cert = signer.sign_certificate(builder, parent.private_key)
    return CaMaterial(certificate=cert, private_key=key, chain=(cert, *parent.chain))


def from_pem(
    cert_pem: bytes, key_pem: bytes, chain_pem: bytes = b"", password: bytes | None = None
) -> CaMaterial:
    """The CA in PEM bytes (`CertificateAuthority.from_pem`).

    Raises:
        ValueError: unreadable PEM; a key that does not match, does not decrypt, unsupported or
            weak; a certificate that is not a CA; a chain that does not reach a self-signed root.
    """
    certs = pem.load_pem_certificates(cert_pem)
    if not certs:
        raise ValueError("the CA certificate PEM holds no certificate")
    key = pem.load_issuer_key(key_pem, password)
    if not pem.same_public_key(key.public_key(), certs[0].public_key()):
        raise ValueError("the CA private key does not match the CA certificate")
    chain = pem.order_chain(certs[0], certs[1:] + pem.load_pem_certificates(chain_pem))
    return CaMaterial(certificate=certs[0], private_key=key, chain=chain)


def with_external_key(cert_pem: bytes, key: ExternalKey, chain_pem: bytes = b"") -> CaMaterial:
    """The CA whose key stays on a token (`CertificateAuthority.with_external_key`).

    Raises:
        ValueError: as `from_pem`; the token key is not the certificate's key.
    """
    certs = pem.load_pem_certificates(cert_pem)
    if not certs:
        raise ValueError("the CA certificate PEM holds no certificate")
    if not pem.same_public_key(key.public_key(), certs[0].public_key()):
        raise ValueError(f"the key {key.location} is not the key of the CA certificate")
    chain = pem.order_chain(certs[0], certs[1:] + pem.load_pem_certificates(chain_pem))
    return CaMaterial(certificate=certs[0], private_key=key, chain=chain)


def validity(
    issuer: x509.Certificate, days: int, now: datetime, *, whole_span: bool = False
) -> tuple[datetime, datetime]:
    """notBefore and notAfter of a certificate `issuer` signs for `days`.

    Raises:
        CaError: the issuer has expired.
    """
    # Never outlive the issuer nor start before it: a relying party would otherwise see
    # a certificate whose issuer is not valid for part of its lifetime.
    if now >= issuer.not_valid_after_utc:
        raise CaError("the issuing CA certificate has expired")
    not_before = max(now - CLOCK_SKEW, issuer.not_valid_before_utc)
    end = (now - CLOCK_SKEW if whole_span else now) + timedelta(days=days)
    not_after = min(end, issuer.not_valid_after_utc)
    return not_before, not_after


def certificate_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: CertificatePublicKeyTypes,
    not_before: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    """A builder with the names, the key and the validity set."""
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )


def ca_name(common_name: str, organization: str | None) -> x509.Name:
    """CN, and O when given: the subject of a CA python-est makes."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def utc(now: datetime | None) -> datetime:
    """`now` in UTC, the current time when None."""
    if now is None:
        return datetime.now(timezone.utc)
    # A naive time is taken as UTC, as cryptography's builders do.
    return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)
