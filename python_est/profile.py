"""Issuance profiles: what a certificate issued under a label looks like."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.x509.oid import NameOID, ObjectIdentifier

from python_est import oids


class SanType(enum.Enum):
    DNS = "dns"
    IP = "ip"
    EMAIL = "email"
    URI = "uri"


# keyUsage bit names as cryptography's x509.KeyUsage arguments spell them.
KEY_USAGE_NAMES = frozenset(
    {
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    }
)

EKU_NAMES: dict[str, ObjectIdentifier] = {
    "clientAuth": oids.ID_KP_CLIENT_AUTH,
    "serverAuth": oids.ID_KP_SERVER_AUTH,
    "cmcRA": oids.ID_KP_CMC_RA,
}

# Subject attribute names accepted in `subject_attributes` and `subject_fixed` (RFC 4514 §3 and
# RFC 4519 names, plus the PKCS#9 emailAddress); dotted OIDs are accepted too.
SUBJECT_ATTRIBUTE_NAMES: dict[str, ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "title": NameOID.TITLE,
    "givenName": NameOID.GIVEN_NAME,
    "surname": NameOID.SURNAME,
    "initials": NameOID.INITIALS,
    "pseudonym": NameOID.PSEUDONYM,
    "postalCode": NameOID.POSTAL_CODE,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
}


@dataclass(frozen=True)
class IssuanceProfile:
    """Rules applied to every certificate issued under one label.

    Attributes:
        name: profile (label) name, "" for the unlabelled default.
        validity_days: lifetime of issued certificates.
        key_usage: keyUsage bits (cryptography argument names); empty means no extension.
        extended_key_usage: EKU OIDs; empty means no extension.
        san_types: SAN kinds copied from the CSR; others make the request fail.
        max_sans: most SAN entries accepted in one CSR.
        crl_urls: URLs of the CRL, put in a cRLDistributionPoints extension; empty means none.
        ocsp_urls: URLs of the OCSP responder, put in an authorityInfoAccess extension.
        ocsp_no_check: add id-pkix-ocsp-nocheck (delegated OCSP signers only).
        subject_attributes: subject attribute types besides CN that a password user (with
            `password_subjects = own`) may choose.
        subject_fixed: attributes (type, value) every issued subject carries, most significant
            first; a CSR value of such a type must equal the fixed one.
        max_rdns, max_attributes, max_extensions: caps on a CSR's subject RDNs, its subject
            attributes (and, separately, its PKCS#10 attributes) and its requested extensions.
        prescribed_extensions: (OID, critical, DER extnValue) the label's CSR attributes
            prescribe (RFC 9908); written as given, in place of the profile's own keyUsage or
            extendedKeyUsage.
        prescribed_san: DER GeneralNames the CSR attributes prescribe; every certificate carries
            them, whatever kind they are, and the CSR may carry them too.
        prescribed_san_critical: the prescribed subjectAltName is critical.
    """

    name: str = ""
    validity_days: int = 365
    key_usage: frozenset[str] = frozenset({"digital_signature", "key_encipherment"})
    extended_key_usage: tuple[ObjectIdentifier, ...] = (oids.ID_KP_CLIENT_AUTH,)
    san_types: frozenset[SanType] = field(
        default_factory=lambda: frozenset({SanType.DNS, SanType.IP, SanType.EMAIL, SanType.URI})
    )
    max_sans: int = 16
    crl_urls: tuple[str, ...] = ()
    subject_attributes: frozenset[ObjectIdentifier] = frozenset()
    subject_fixed: tuple[tuple[ObjectIdentifier, str], ...] = ()
    max_rdns: int = 16
    max_attributes: int = 32
    max_extensions: int = 32
    prescribed_extensions: tuple[tuple[ObjectIdentifier, bool, bytes], ...] = ()
    prescribed_san: tuple[bytes, ...] = ()
    prescribed_san_critical: bool = False
    ocsp_urls: tuple[str, ...] = ()
    ocsp_no_check: bool = False
