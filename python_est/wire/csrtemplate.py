"""RFC 9908 CSR attribute values: prescribed Extensions and the CertificationRequestInfoTemplate.

RFC 9908 §3.2: an extensionRequest attribute in CsrAttrs carries exactly one value of type
Extensions (RFC 5280 §4.1), with no extnID twice. RFC 9908 §3.4 adds a template attribute, a
partly filled CertificationRequestInfo:

    CertificationRequestInfoTemplate ::= SEQUENCE {
        version       INTEGER { v1(0) },
        subject       NameTemplate OPTIONAL,          -- RDN values OPTIONAL
        subjectPKInfo [0] SubjectPublicKeyInfoTemplate OPTIONAL,
        attributes    [1] Attributes }                -- extensionRequest or
                                                      -- extensionReqTemplate (extnValue OPTIONAL)

An absent value means "the client fills it in". pyasn1-modules has no RFC 9908 module, so the
schema is declared here from the RFC's ASN.1 (its Appendix A), with IMPLICIT tags.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, constraint, namedtype, tag, univ
from pyasn1_modules import rfc3447, rfc5280

from python_est.oids import EXTENSION_REQ_TEMPLATE, EXTENSION_REQUEST
from python_est.wire.der import check_der_tree, children, read_tlv

# Schema objects (pyasn1 clones them per value); RFC 9908 Appendix A, IMPLICIT tags.
_SINGLE_ATTRIBUTE = univ.Sequence(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType("type", univ.ObjectIdentifier()),
        namedtype.OptionalNamedType("value", univ.Any()),
    )
)
_RDN = univ.SetOf(componentType=_SINGLE_ATTRIBUTE, sizeSpec=constraint.ValueSizeConstraint(1, 64))
_NAME = univ.SequenceOf(componentType=_RDN)
_SPKI = univ.Sequence(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType("algorithm", rfc5280.AlgorithmIdentifier()),
        namedtype.OptionalNamedType("subjectPublicKey", univ.BitString()),
    )
)
_ATTRIBUTE = univ.Sequence(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType("type", univ.ObjectIdentifier()),
        namedtype.NamedType("values", univ.SetOf(componentType=univ.Any())),
    )
)


def _context(number: int) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number)


CERTIFICATION_REQUEST_INFO_TEMPLATE = univ.Sequence(
    componentType=namedtype.NamedTypes(
        namedtype.NamedType("version", univ.Integer()),
        namedtype.OptionalNamedType("subject", _NAME),
        namedtype.OptionalNamedType("subjectPKInfo", _SPKI.subtype(implicitTag=_context(0))),
        namedtype.NamedType(
            "attributes",
            univ.SetOf(componentType=_ATTRIBUTE).subtype(implicitTag=_context(1)),
        ),
    )
)
"""RFC 9908 §3.4: CertificationRequestInfoTemplate."""

EXTENSION_TEMPLATES = univ.SequenceOf(
    componentType=univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("extnID", univ.ObjectIdentifier()),
            namedtype.DefaultedNamedType("critical", univ.Boolean(False)),
            namedtype.OptionalNamedType("extnValue", univ.OctetString()),
        )
    ),
    sizeSpec=constraint.ValueSizeConstraint(1, 64),
)
"""RFC 9908 Appendix A: ExtensionTemplates, Extensions whose extnValue is OPTIONAL."""


@dataclass(frozen=True)
class SubjectSlot:
    """One subject attribute of a template: `value` is the DER AttributeValue, None to fill in."""

    oid: str
    value: bytes | None = None


@dataclass(frozen=True)
class ExtensionSlot:
    """One extension: `value` is the DER inside extnValue, None for the client to fill in."""

    oid: str
    critical: bool = False
    value: bytes | None = None


@dataclass(frozen=True)
class CsrTemplate:
    """A decoded CertificationRequestInfoTemplate.

    Attributes:
        subject: the subject's attributes in order (multi-valued RDNs flattened); None when
            the server places no requirement on the subject.
        key_algorithm: (algorithm OID, DER parameters or None), or None for any key.
        extensions: from the extensionRequest or extensionReqTemplate attribute.
        public_key: the subjectPublicKey bits, present only to give an RSA size (a dummy
            RSAPublicKey with a modulus of that length, RFC 9908 §3.4).
    """

    subject: tuple[SubjectSlot, ...] | None = None
    key_algorithm: tuple[str, bytes | None] | None = None
    extensions: tuple[ExtensionSlot, ...] = ()
    public_key: bytes | None = None


def encode_extensions(slots: tuple[ExtensionSlot, ...]) -> bytes:
    """DER of `slots` as Extensions (every value present) or ExtensionTemplates.

    The two encodings are the same bytes when every value is present (critical FALSE is
    omitted, DEFAULT), so one encoder serves extensionRequest and extensionReqTemplate.

    Raises:
        ValueError: no slots, or an extnID twice (RFC 9908 §3.2).
    """
    if not slots:
        raise ValueError("an extension list needs at least one extension")
    if len({slot.oid for slot in slots}) != len(slots):
        raise ValueError("an extension is listed twice (RFC 9908 §3.2)")
    sequence = EXTENSION_TEMPLATES.clone()
    for slot in slots:
        item = EXTENSION_TEMPLATES.componentType.clone()
        item["extnID"] = univ.ObjectIdentifier(slot.oid)
        if slot.critical:
            item["critical"] = True
        if slot.value is not None:
            item["extnValue"] = univ.OctetString(slot.value)
        sequence.append(item)
    return bytes(der_encoder.encode(sequence))


def decode_extensions(der: bytes) -> tuple[ExtensionSlot, ...]:
    """Decode Extensions or ExtensionTemplates (RFC 9908 §3.2, Appendix A).

    Raises:
        ValueError: not DER of that type, trailing bytes, or an extnID twice.
    """
    decoded = _decode(der, EXTENSION_TEMPLATES, "ExtensionTemplates")
    slots = []
    for item in decoded:
        value = item["extnValue"]
        slots.append(
            ExtensionSlot(
                oid=str(item["extnID"]),
                critical=bool(item["critical"]),
                value=bytes(value) if value.isValue else None,
            )
        )
    if len({slot.oid for slot in slots}) != len(slots):
        raise ValueError("an extension is listed twice (RFC 9908 §3.2)")
    return tuple(slots)


def encode_template(template: CsrTemplate) -> bytes:
    """DER of a CertificationRequestInfoTemplate (RFC 9908 §3.4).

    The extensions go in an extensionRequest attribute when every value is given, else in
    an extensionReqTemplate attribute (the RFC allows only one of the two).
    """
    value = CERTIFICATION_REQUEST_INFO_TEMPLATE.clone()
    value["version"] = 0
    if template.subject is not None:
        name = value["subject"]
        for slot in template.subject:
            single = _SINGLE_ATTRIBUTE.clone()
            single["type"] = univ.ObjectIdentifier(slot.oid)
            if slot.value is not None:
                single["value"] = univ.Any(slot.value)
            rdn = _RDN.clone()
            rdn.append(single)
            name.append(rdn)
    if template.key_algorithm is not None:
        oid, parameters = template.key_algorithm
        algorithm = value["subjectPKInfo"]["algorithm"]
        algorithm["algorithm"] = univ.ObjectIdentifier(oid)
        if parameters is not None:
            algorithm["parameters"] = univ.Any(parameters)
        if template.public_key is not None:
            bits = univ.BitString.fromOctetString(template.public_key)
            value["subjectPKInfo"]["subjectPublicKey"] = bits
    attributes = value["attributes"]
    attributes.clear()  # an empty SET OF is a value, not an unset schema
    if template.extensions:
        complete = all(slot.value is not None for slot in template.extensions)
        attribute = _ATTRIBUTE.clone()
        attribute["type"] = univ.ObjectIdentifier(
            (EXTENSION_REQUEST if complete else EXTENSION_REQ_TEMPLATE).dotted_string
        )
        attribute["values"].append(univ.Any(encode_extensions(template.extensions)))
        attributes.append(attribute)
    return bytes(der_encoder.encode(value))


def decode_template(der: bytes) -> CsrTemplate:
    """Decode a CertificationRequestInfoTemplate.

    Raises:
        ValueError: not DER of that type, version not v1, several extension attributes or an
            attribute with other than one value (RFC 9908 §3.4).
    """
    decoded = _decode(der, CERTIFICATION_REQUEST_INFO_TEMPLATE, "template")
    if int(decoded["version"]) != 0:
        raise ValueError("template version must be v1 (0)")
    subject = None
    if decoded["subject"].isValue:
        subject = tuple(
            SubjectSlot(
                oid=str(single["type"]),
                value=bytes(single["value"]) if single["value"].isValue else None,
            )
            for rdn in decoded["subject"]
            for single in rdn
        )
    key_algorithm = None
    public_key = None
    if decoded["subjectPKInfo"].isValue:
        bits = decoded["subjectPKInfo"]["subjectPublicKey"]
        public_key = bits.asOctets() if bits.isValue else None
        algorithm = decoded["subjectPKInfo"]["algorithm"]
        parameters = algorithm["parameters"]
        key_algorithm = (
            str(algorithm["algorithm"]),
            bytes(parameters) if parameters.isValue else None,
        )
    extensions: tuple[ExtensionSlot, ...] = ()
    kinds = {EXTENSION_REQUEST.dotted_string, EXTENSION_REQ_TEMPLATE.dotted_string}
    found = [a for a in decoded["attributes"] if str(a["type"]) in kinds]
    if len(found) > 1:
        raise ValueError("a template holds at most one extension attribute (RFC 9908 §3.4)")
    if found:
        values = list(found[0]["values"])
        if len(values) != 1:
            raise ValueError("an extension attribute holds exactly one value (RFC 9908 §3.4)")
        extensions = decode_extensions(bytes(values[0]))
        if str(found[0]["type"]) == EXTENSION_REQUEST.dotted_string and any(
            slot.value is None for slot in extensions
        ):
            raise ValueError("extensionRequest extensions need their values")
    return CsrTemplate(
        subject=subject, key_algorithm=key_algorithm, extensions=extensions, public_key=public_key
    )


def _decode(der: bytes, spec: Any, what: str) -> Any:
    try:
        check_der_tree(der)
        decoded, rest = der_decoder.decode(der, asn1Spec=spec)
    except (PyAsn1Error, ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a valid {what}: {text[:80]}") from None
    if rest:
        raise ValueError(f"trailing bytes after the {what}")
    return decoded


# --- values: subject attributes and subjectAltName entries ---------------------------------------


def attribute_value_der(oid: str, text: str) -> bytes:
    """The DER AttributeValue cryptography writes for `text` (PrintableString for C, ...)."""
    name = x509.Name([x509.NameAttribute(x509.ObjectIdentifier(oid), text)])
    der = name.public_bytes()
    rdn_sequence = read_tlv(der)
    (rdn,) = children(der, rdn_sequence)
    (pair,) = children(der, rdn)
    _, value = children(der, pair)
    return value.raw(der)


_STRING_TYPES = {
    0x0C: char.UTF8String(),
    0x13: char.PrintableString(),
    0x16: char.IA5String(),
    0x1E: char.BMPString(),
    0x1C: char.UniversalString(),
    0x14: char.TeletexString(),
}


# A label's few template values are read on every enforced request: decode each once.
@functools.lru_cache(maxsize=256)
def attribute_value_text(der: bytes) -> str | None:
    """The text of a DirectoryString-like AttributeValue, None when it is not a string."""
    try:
        tlv = read_tlv(der)
    except ValueError:
        return None
    spec = _STRING_TYPES.get(tlv.tag)
    if spec is None or tlv.end != len(der):
        return None
    try:
        value, _ = der_decoder.decode(der, asn1Spec=spec)
        return str(value)
    except (PyAsn1Error, UnicodeDecodeError):
        return None


# RFC 9908 §3.4: in a subjectAltName template, a directoryName holding the NULL-DN or an
# iPAddress holding an empty OCTET STRING asks the client to fill in such a name.
SAN_PLACEHOLDERS = {"ip": b"\x87\x00", "dirname": b"\xa4\x02\x30\x00"}


def general_names(der: bytes) -> list[bytes]:
    """The DER GeneralName elements of a GeneralNames (a subjectAltName extnValue).

    Raises:
        ValueError: not one DER SEQUENCE.
    """
    outer = read_tlv(der)
    if outer.end != len(der) or outer.tag != 0x30:
        raise ValueError("subjectAltName is not a SEQUENCE")
    return [child.raw(der) for child in children(der, outer)]


def general_name_der(name: x509.GeneralName) -> bytes:
    """The DER of one GeneralName, as cryptography encodes it."""
    (element,) = general_names(x509.SubjectAlternativeName([name]).public_bytes())
    return element


def der_sequence(elements: list[bytes]) -> bytes:
    """A DER SEQUENCE of already encoded elements."""
    content = b"".join(elements)
    length = len(content)
    if length < 0x80:
        header = bytes([0x30, length])
    else:
        size = (length.bit_length() + 7) // 8
        header = bytes([0x30, 0x80 | size]) + length.to_bytes(size, "big")
    return header + content


def oid_der(dotted: str) -> bytes:
    """The DER of an OBJECT IDENTIFIER."""
    return bytes(der_encoder.encode(univ.ObjectIdentifier(dotted)))


def decode_oid(der: bytes) -> str:
    """The dotted form of a DER OBJECT IDENTIFIER.

    Raises:
        ValueError: not exactly one OID.
    """
    return str(_decode(der, univ.ObjectIdentifier(), "OBJECT IDENTIFIER"))


def dummy_rsa_public_key(bits: int) -> bytes:
    """An RSAPublicKey whose modulus has `bits` bits: how a template gives an RSA size."""
    key = rfc3447.RSAPublicKey()
    key["modulus"] = (1 << (bits - 1)) | 1
    key["publicExponent"] = 65537
    return bytes(der_encoder.encode(key))


def rsa_modulus_bits(der: bytes) -> int:
    """The modulus length of a DER RSAPublicKey.

    Raises:
        ValueError: not an RSAPublicKey.
    """
    key = _decode(der, rfc3447.RSAPublicKey(), "RSAPublicKey")
    return int(key["modulus"]).bit_length()
