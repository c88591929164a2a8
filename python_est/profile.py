"""Issuance profiles: what a certificate issued under a label looks like."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from cryptography.x509.oid import ObjectIdentifier

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
