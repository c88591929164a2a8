"""Building a CSR the way the CA's /csrattrs template asks (RFC 9908 §3.4, §4).

A client that understands the CertificationRequestInfoTemplate uses only it and ignores the
other items (RFC 9908 §4). Values the template gives are copied; values it leaves open are
filled from the operator's options (the CN from `--common-name`, other subject attributes
from `--subject-value TYPE=VALUE`, subjectAltNames from `--dns`/`--ip`); a value the client
cannot choose is an error naming it, before anything is sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

from python_est import oids, wire
from python_est.client.files import ClientKey
from python_est.keys import KeyType
from python_est.profile import SUBJECT_ATTRIBUTE_NAMES
from python_est.wire.csrtemplate import (
    SAN_PLACEHOLDERS,
    CsrTemplate,
    ExtensionSlot,
    attribute_value_text,
    decode_oid,
    decode_template,
    der_sequence,
    general_name_der,
    general_names,
    rsa_modulus_bits,
)

_CURVES = {
    oids.SECP256R1.dotted_string: KeyType.EC_P256,
    oids.SECP384R1.dotted_string: KeyType.EC_P384,
}
_PLACEHOLDER_KINDS = {value: kind for kind, value in SAN_PLACEHOLDERS.items()}
# What the client puts in an extension whose value the template leaves open.
_DEFAULT_VALUES: dict[str, x509.ExtensionType] = {
    ExtensionOID.EXTENDED_KEY_USAGE.dotted_string: x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.CLIENT_AUTH]
    ),
    ExtensionOID.KEY_USAGE.dotted_string: x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    ),
}


def find_template(attrs: wire.CsrAttrs) -> CsrTemplate | None:
    """The CertificationRequestInfoTemplate among `attrs`, or None.

    Raises:
        ValueError: the template attribute is malformed.
    """
    oid = oids.CERTIFICATION_REQUEST_INFO_TEMPLATE.dotted_string
    for item in attrs:
        if isinstance(item, wire.CsrAttribute) and item.oid == oid:
            value = item.values[0]
            if not isinstance(value, bytes) or len(item.values) != 1:
                raise ValueError("the CSR template attribute needs exactly one value")
            return decode_template(value)
    return None


def template_key_type(template: CsrTemplate) -> KeyType | None:
    """The key type the template asks for, None when it leaves the key open.

    Raises:
        ValueError: a key type this client cannot generate.
    """
    if template.key_algorithm is None:
        return None
    algorithm, parameters = template.key_algorithm
    if algorithm == oids.RSA_ENCRYPTION.dotted_string:
        if template.public_key is None:
            return KeyType.RSA_2048
        bits = rsa_modulus_bits(template.public_key)
        for key_type in KeyType:
            if key_type.is_rsa and key_type.rsa_bits == bits:
                return key_type
        raise ValueError(f"the CA's CSR template asks for an RSA size this client lacks ({bits})")
    if algorithm == oids.ID_EC_PUBLIC_KEY.dotted_string and parameters is not None:
        curve = decode_oid(parameters)
        if curve in _CURVES:
            return _CURVES[curve]
    raise ValueError(f"the CA's CSR template asks for a key this client cannot make ({algorithm})")


def template_csr(
    key: ClientKey,
    template: CsrTemplate,
    *,
    common_name: str,
    subject_values: Mapping[str, str] = {},
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
) -> x509.CertificateSigningRequest:
    """A CSR following `template` (see the module comment).

    Raises:
        ValueError: a value the template leaves open that no option gives.
    """
    subject = _subject(template, common_name, subject_values)
    users = [general_name_der(x509.DNSName(name)) for name in dns_names]
    users += [general_name_der(x509.IPAddress(ipaddress.ip_address(ip))) for ip in ip_addresses]
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    san_done = False
    for slot in template.extensions:
        if slot.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string:
            value = _san(slot, users)
            san_done = True
        elif slot.value is not None:
            value = slot.value
        elif slot.oid in _DEFAULT_VALUES:
            value = _DEFAULT_VALUES[slot.oid].public_bytes()
        else:
            raise ValueError(f"the CA's CSR template leaves extension {slot.oid} to the client")
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(slot.oid), value)
        builder = builder.add_extension(extension, critical=slot.critical)
    if users and not san_done:
        san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, der_sequence(users))
        builder = builder.add_extension(san, critical=False)
    return builder.sign(key, hashes.SHA256())


def parse_subject_value(text: str) -> tuple[str, str]:
    """`TYPE=VALUE` of `--subject-value` as (dotted OID, value).

    Raises:
        ValueError: not TYPE=VALUE with a known TYPE.
    """
    name, sep, value = text.partition("=")
    oid = SUBJECT_ATTRIBUTE_NAMES.get(name.strip())
    if not sep or not value or oid is None:
        known = ", ".join(SUBJECT_ATTRIBUTE_NAMES)
        raise ValueError(f"--subject-value {text!r}: use TYPE=VALUE with TYPE one of {known}")
    return oid.dotted_string, value


def _subject(template: CsrTemplate, common_name: str, values: Mapping[str, str]) -> x509.Name:
    if template.subject is None:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    attributes = []
    for slot in template.subject:
        oid = x509.ObjectIdentifier(slot.oid)
        if slot.value is not None:
            text = attribute_value_text(slot.value)
            if text is None:
                raise ValueError(f"the CA's CSR template gives {slot.oid} a non-text value")
        elif oid == NameOID.COMMON_NAME:
            text = common_name
        elif slot.oid in values:
            text = values[slot.oid]
        else:
            raise ValueError(
                f"the CA's CSR template asks for subject attribute {slot.oid}; "
                "give it with --subject-value TYPE=VALUE"
            )
        attributes.append(x509.NameAttribute(oid, text))
    return x509.Name(attributes)


def _san(slot: ExtensionSlot, users: list[bytes]) -> bytes:
    # RFC 9908 §3.4: keep the names given, fill each placeholder with the operator's names.
    if slot.value is None:
        if not users:
            raise ValueError("the CA's CSR template asks for subjectAltNames; give --dns or --ip")
        return der_sequence(users)
    names = general_names(slot.value)
    fixed = [name for name in names if name not in _PLACEHOLDER_KINDS]
    for placeholder in (name for name in names if name in _PLACEHOLDER_KINDS):
        if not any(user[0] == placeholder[0] for user in users):
            kind = _PLACEHOLDER_KINDS[placeholder]
            raise ValueError(f"the CA's CSR template asks for a {kind} subjectAltName")
    return der_sequence(fixed + [name for name in users if name not in fixed])


def template_renewal_csr(
    key: ClientKey, current: x509.Certificate, template: CsrTemplate
) -> x509.CertificateSigningRequest:
    """A renewal CSR: the Subject and subjectAltName of `current` (RFC 7030 §4.2.2), and the
    template's other extensions (a value left open: the one `current` carries).

    Raises:
        ValueError: the template leaves an extension open that `current` lacks and this
            client has no value for.
    """
    builder = x509.CertificateSigningRequestBuilder().subject_name(current.subject)
    carried = {ext.oid.dotted_string: ext for ext in current.extensions}
    san = carried.get(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    if san is not None:
        builder = builder.add_extension(san.value, critical=san.critical)
    for slot in template.extensions:
        if slot.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string:
            continue
        if slot.value is not None:
            value = slot.value
        elif slot.oid in carried:
            value = carried[slot.oid].value.public_bytes()
        elif slot.oid in _DEFAULT_VALUES:
            value = _DEFAULT_VALUES[slot.oid].public_bytes()
        else:
            raise ValueError(f"the CA's CSR template leaves extension {slot.oid} to the client")
        extension = x509.UnrecognizedExtension(x509.ObjectIdentifier(slot.oid), value)
        builder = builder.add_extension(extension, critical=slot.critical)
    return builder.sign(key, hashes.SHA256())
