"""What the CA accepts from a CSR and what it writes into a certificate."""

from __future__ import annotations

import ipaddress
import secrets
from datetime import timedelta
from typing import Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from python_est.errors import CaError, InvalidCsr
from python_est.profile import KEY_USAGE_NAMES, IssuanceProfile, SanType

IssuerPrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
IssuerPublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SignatureHash = hashes.SHA256 | hashes.SHA384 | hashes.SHA512

# Backdating notBefore absorbs clock skew between the CA and relying parties.
CLOCK_SKEW = timedelta(minutes=5)
# 158 random bits under a set top bit: positive, always 20 DER octets (the RFC 5280 §4.1.2.2
# maximum) and far more than the 64 bits of entropy the CA/Browser Forum asks for.
SERIAL_BITS = 159

_SAN_KINDS: dict[type[x509.GeneralName], SanType] = {
    x509.DNSName: SanType.DNS,
    x509.IPAddress: SanType.IP,
    x509.RFC822Name: SanType.EMAIL,
    x509.UniformResourceIdentifier: SanType.URI,
}
_OTHER_SAN_KINDS: dict[type[x509.GeneralName], str] = {
    x509.OtherName: "otherName",
    x509.DirectoryName: "directoryName",
    x509.RegisteredID: "registeredID",
}
# RFC 8813 §3: an id-ecPublicKey certificate MUST NOT assert keyEncipherment or dataEncipherment
# (an EC key cannot encrypt). RFC 8410 §5: Ed25519/Ed448 certificates carry signature bits only.
_EC_USAGES = KEY_USAGE_NAMES - {"key_encipherment", "data_encipherment"}
_EDDSA_USAGES = frozenset({"digital_signature", "content_commitment", "crl_sign"})
_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def random_serial() -> int:
    """Return a fresh random serial number of exactly `SERIAL_BITS` bits."""
    return secrets.randbits(SERIAL_BITS - 1) | 1 << (SERIAL_BITS - 1)


class HasPublicKey(Protocol):
    """A CA key in memory or on a token: all the hash choice needs is its public half."""

    def public_key(self) -> IssuerPublicKey: ...


def signature_hash(key: HasPublicKey) -> SignatureHash:
    """Return the hash to sign with: as strong as the CA's curve, SHA-256 for RSA keys."""
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.key_size >= 521:
            return hashes.SHA512()
        if public.curve.key_size >= 384:
            return hashes.SHA384()
    return hashes.SHA256()


def verified_csr_key(csr: x509.CertificateSigningRequest) -> CertificatePublicKeyTypes:
    """Return the CSR's public key once its signature (proof of possession) verifies."""
    try:
        key = csr.public_key()
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise InvalidCsr("CSR key or signature algorithm is not supported") from exc
    if not valid:
        raise InvalidCsr("CSR signature does not verify")
    return key


def permitted_san(
    csr: x509.CertificateSigningRequest, profile: IssuanceProfile
) -> x509.SubjectAlternativeName | None:
    """Return the CSR's requested subjectAltName if `profile` allows every entry in it."""
    try:
        requested = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidCsr("CSR extensionRequest is malformed") from exc
    # Names the label prescribes (RFC 9908) are the CA's own choice, whatever their kind.
    names = [name for name in requested if _name_der(name) not in profile.prescribed_san]
    if len(names) > profile.max_sans:
        raise InvalidCsr(f"CSR has {len(names)} subjectAltNames (at most {profile.max_sans})")
    for name in names:
        kind = _SAN_KINDS.get(type(name))
        if kind is None:
            label = _OTHER_SAN_KINDS.get(type(name), type(name).__name__)
            raise InvalidCsr(f"subjectAltName of kind {label} is not allowed")
        if kind not in profile.san_types:
            raise InvalidCsr(f"subjectAltName of kind {kind.value} is not allowed")
        if kind is not SanType.IP and not _is_plain_text(str(name.value)):
            raise InvalidCsr(f"subjectAltName {kind.value} value is empty or contains spaces")
    return requested if names else None


def issued_san(
    requested: x509.SubjectAlternativeName | None, profile: IssuanceProfile
) -> x509.ExtensionType | None:
    """The subjectAltName to certify: the CSR's permitted names plus every prescribed one.

    RFC 9908 lets the server prescribe names; a CSR that leaves them out still gets them, so
    omitting a prescribed name never yields a certificate the label did not mean to issue.
    """
    if not profile.prescribed_san:
        return requested
    elements = [_name_der(name) for name in requested or ()]
    elements += [name for name in profile.prescribed_san if name not in elements]
    content = b"".join(elements)
    size = len(content)
    length = bytes([size]) if size < 0x80 else _long_length(size)
    return x509.UnrecognizedExtension(
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30" + length + content
    )


def _long_length(size: int) -> bytes:
    count = (size.bit_length() + 7) // 8
    return bytes([0x80 | count]) + size.to_bytes(count, "big")


def _name_der(name: x509.GeneralName) -> bytes:
    # cryptography encodes one GeneralName only inside GeneralNames: drop the SEQUENCE header.
    der = x509.SubjectAlternativeName([name]).public_bytes()
    header = 2 if der[1] < 0x80 else 2 + (der[1] & 0x7F)
    return der[header:]


def issued_subject(requested: x509.Name, profile: IssuanceProfile) -> x509.Name:
    """The subject to certify: the profile's fixed attributes first, then the CSR's RDNs.

    The CSR's own attributes of a fixed type are dropped (the service has refused any that
    differ from the fixed value), so a certificate renewed with its own subject keeps it.
    """
    if not profile.subject_fixed:
        return requested
    fixed = {oid for oid, _ in profile.subject_fixed}
    rdns = [
        x509.RelativeDistinguishedName([x509.NameAttribute(oid, value)])
        for oid, value in profile.subject_fixed
    ]
    for rdn in requested.rdns:
        kept = [attr for attr in rdn if attr.oid not in fixed]
        if kept:
            rdns.append(x509.RelativeDistinguishedName(kept))
    return x509.Name(rdns)


def _is_plain_text(value: str) -> bool:
    # RFC 5280 §4.2.1.6: a dNSName of " " MUST NOT be used; no IA5 name here may hold spaces.
    return value != "" and value.isprintable() and not any(c.isspace() for c in value)


def key_usage(names: frozenset[str], public_key: CertificatePublicKeyTypes) -> x509.KeyUsage | None:
    """Return the keyUsage extension for an end-entity key, None when no bit applies.

    Bits meaningless for the key's algorithm are dropped, so one profile serves RSA and EC
    requesters alike.

    Raises:
        CaError: the profile names an unknown bit or keyCertSign.
    """
    if names - KEY_USAGE_NAMES or "key_cert_sign" in names:
        # RFC 5280 §4.2.1.9: keyCertSign requires cA TRUE, which end-entity certificates lack.
        raise CaError("the issuance profile has an unusable keyUsage")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        names &= _EC_USAGES
    elif not isinstance(public_key, rsa.RSAPublicKey):
        names &= _EDDSA_USAGES
    if not names:
        return None
    flags = {name: name in names for name in KEY_USAGE_NAMES}
    return x509.KeyUsage(**flags, encipher_only=False, decipher_only=False)


def crl_distribution_points(urls: tuple[str, ...]) -> x509.CRLDistributionPoints | None:
    """Return one distribution point naming every URL (RFC 5280 §4.2.1.13), None for none."""
    if not urls:
        return None
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(url) for url in urls]
    point = x509.DistributionPoint(
        full_name=names, relative_name=None, reasons=None, crl_issuer=None
    )
    return x509.CRLDistributionPoints([point])


def ocsp_access(urls: tuple[str, ...]) -> x509.AuthorityInformationAccess | None:
    """Return an authorityInfoAccess naming each OCSP responder (RFC 5280 §4.2.2.1), or None."""
    if not urls:
        return None
    return x509.AuthorityInformationAccess(
        [
            x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(url)
            )
            for url in urls
        ]
    )


def add_ca_extensions(
    builder: x509.CertificateBuilder,
    public_key: IssuerPublicKey,
    path_length: int | None,
    issuer_public_key: IssuerPublicKey,
) -> x509.CertificateBuilder:
    """Add the extensions of a CA certificate (RFC 5280 §4.2.1.9: cA TRUE, critical)."""
    constraints = x509.BasicConstraints(ca=True, path_length=path_length)
    ski = x509.SubjectKeyIdentifier.from_public_key(public_key)
    aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key)
    return (
        builder.add_extension(constraints, critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(ski, critical=False)
        .add_extension(aki, critical=False)
    )


def authority_key_identifier(
    issuer: x509.Certificate, issuer_key: IssuerPublicKey
) -> x509.AuthorityKeyIdentifier:
    """The AKI of a certificate `issuer` signs with `issuer_key`."""
    # RFC 5280 §4.2.1.1: the AKI keyIdentifier matches the issuer's SKI, whatever method
    # produced that SKI; derive one from the key only when the CA certificate has none.
    try:
        ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
