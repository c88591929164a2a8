"""IEEE 802.1AR-style factory (IDevID) certificates made at run time for the tests.

A manufacturer root valid "forever" (notAfter 99991231235959Z, RFC 5280 §4.1.2.5) issues
IDevIDs the way 802.1AR describes them: a serialNumber subject attribute, a hardwareModuleName
otherName subjectAltName (RFC 4108 §5), a non-critical keyUsage, no extendedKeyUsage, the same
"forever" notAfter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyasn1.codec.der import encoder
from pyasn1.type import univ
from pyasn1_modules import rfc4108

from python_est.policy.factory import ID_ON_HARDWARE_MODULE_NAME

FOREVER = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
HW_TYPE = "1.3.6.1.4.1.99999.1.1"  # a made-up hwType under an example enterprise arc


@dataclass(frozen=True)
class Manufacturer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def manufacturer(name: str = "Acme Devices IDevID CA") -> Manufacturer:
    """A manufacturer root named `name` with a fresh key (two calls: look-alikes)."""
    key = ec.generate_private_key(ec.SECP384R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(FOREVER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA384())
    )
    return Manufacturer(key, cert)


def hardware_module_name(serial: bytes) -> x509.OtherName:
    value = rfc4108.HardwareModuleName()
    value["hwType"] = univ.ObjectIdentifier(HW_TYPE)
    value["hwSerialNum"] = univ.OctetString(serial)
    return x509.OtherName(ID_ON_HARDWARE_MODULE_NAME, encoder.encode(value))


def idevid(
    maker: Manufacturer,
    serial: str,
    *,
    not_after: datetime = FOREVER,
    not_before: datetime | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    subject: x509.Name | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """An 802.1AR-style IDevID with subject serialNumber `serial` (see the module docstring)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start = not_before or datetime.now(timezone.utc) - timedelta(hours=1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(
            subject
            or x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme Devices"),
                    x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
                ]
            )
        )
        .issuer_name(maker.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName([hardware_module_name(serial.encode("ascii"))]),
            critical=False,
        )
        .add_extension(
            x509.KeyUsage(True, False, False, False, True, False, False, False, False),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(maker.key.public_key()),
            critical=False,
        )
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(maker.key, hashes.SHA384()), key


def crl(
    maker: Manufacturer, revoked: list[x509.Certificate], *, next_update: datetime | None = None
) -> x509.CertificateRevocationList:
    now = datetime.now(timezone.utc)
    next_update = next_update or now + timedelta(days=7)
    # A stale CRL's lastUpdate must still precede its nextUpdate, however long ago the caller
    # computed it (a module-level NOW may be minutes old in a long run).
    last_update = min(now, next_update) - timedelta(minutes=5)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(maker.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - timedelta(minutes=1))
            .build()
        )
    return builder.sign(maker.key, hashes.SHA384())
