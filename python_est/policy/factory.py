"""Which subject a factory (IDevID) certificate may obtain (`idevid_subject`, issue 18 item 3).

- `same`: the factory certificate's own subject, compared exactly (`subject.names_equal`); the
  CSR's subjectAltNames, if any, must all be in the factory certificate.
- `template`: `idevid_template` filled from the factory certificate (`config.idevid`); no
  subjectAltName, since the template fixes the one identity the device gets.
- `registration`: the registration named like the certificate's serialNumber attribute
  (`service.factory`; the CSR then matches the registration as a code login's does).
"""

from __future__ import annotations

import string

from cryptography import x509
from pyasn1.codec.der import decoder
from pyasn1.error import PyAsn1Error
from pyasn1_modules import rfc4108

from python_est.config.idevid import fill, parse_template
from python_est.policy.subject import names_equal, quote, san_key, sans_of

# RFC 4108 §5: id-on-hardwareModuleName.
ID_ON_HARDWARE_MODULE_NAME = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.4")
_PRINTABLE = frozenset(string.ascii_letters + string.digits + "-._:/+")


def factory_serial(cert: x509.Certificate) -> str | None:
    """The subject serialNumber attribute (X.520, 2.5.4.5), when there is exactly one."""
    values = cert.subject.get_attributes_for_oid(x509.NameOID.SERIAL_NUMBER)
    if len(values) != 1 or not isinstance(values[0].value, str) or not values[0].value:
        return None
    return values[0].value


def hardware_serial(cert: x509.Certificate) -> str | None:
    """The hwSerialNum of the hardwareModuleName subjectAltName (RFC 4108 §5), when there is
    exactly one: as text when it is short printable ASCII, else as upper-case hex."""
    found = [
        name.value
        for name in sans_of(cert)
        if isinstance(name, x509.OtherName) and name.type_id == ID_ON_HARDWARE_MODULE_NAME
    ]
    if len(found) != 1:
        return None
    try:
        decoded, rest = decoder.decode(found[0], asn1Spec=rfc4108.HardwareModuleName())
    except PyAsn1Error:
        return None
    if rest:
        return None
    raw = bytes(decoded["hwSerialNum"])
    text = raw.decode("ascii", "replace")
    if raw and len(raw) <= 64 and set(text) <= _PRINTABLE:
        return text
    return raw.hex().upper() if raw else None


def template_subject(template: str, cert: x509.Certificate) -> x509.Name:
    """`template` filled from `cert`, value by value (see `config.idevid`).

    Raises:
        ValueError: the certificate lacks a value the template uses, or a filled value is not
            valid for its attribute (a country code of three letters...).
    """
    values = {"serialNumber": factory_serial(cert), "hwSerialNum": hardware_serial(cert)}
    known = {key: value for key, value in values.items() if value is not None}
    rdns = []
    for rdn in parse_template(template).rdns:
        attributes = []
        for attribute in rdn:
            assert isinstance(attribute.value, str)  # parse_template checked it
            try:
                value = fill(attribute.value, known)
            except KeyError as missing:
                raise ValueError(
                    f"the factory certificate has no {missing.args[0]} for the template"
                ) from None
            attributes.append(x509.NameAttribute(attribute.oid, value))
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def factory_refusal(
    csr: x509.CertificateSigningRequest, cert: x509.Certificate, rule: str, template: str
) -> str | None:
    """Why the holder of factory certificate `cert` may not obtain `csr`'s names under `rule`
    ("same" or "template"), or None when it may.

    Raises:
        InvalidCsr: the CSR's extensions cannot be read.
    """
    if rule == "template":
        try:
            wanted = template_subject(template, cert)
        except ValueError as exc:
            return str(exc)
        if not names_equal(csr.subject, wanted):
            return (
                f"subject {quote(csr.subject.rfc4514_string())} is not the one this factory "
                f"certificate obtains ({quote(wanted.rfc4514_string())})"
            )
        if sans_of(csr):
            return "a factory certificate's subject comes from idevid_template: no subjectAltName"
        return None
    if not names_equal(csr.subject, cert.subject):
        return (
            f"subject {quote(csr.subject.rfc4514_string())} differs from the factory "
            "certificate's subject"
        )
    held = {san_key(name) for name in sans_of(cert)}
    for name in sans_of(csr):
        if san_key(name) not in held:
            return f"subjectAltName {quote(str(name.value))} is not in the factory certificate"
    return None
