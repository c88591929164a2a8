"""CSR attributes (RFC 7030 §4.5.2 as fixed by RFC 8951 §4): value model, DER codec, config text.

CsrAttrs  ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID
AttrOrOID ::= CHOICE { oid OBJECT IDENTIFIER, attribute Attribute }
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from pyasn1.codec.der import decoder as der_decoder
from pyasn1.codec.der import encoder as der_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import univ
from pyasn1_modules import rfc7030

from python_est.errors import MalformedBody
from python_est.oids import CHALLENGE_PASSWORD, NAMED_OIDS
from python_est.wire.der import TAG_OID, check_der_tree, read_tlv, single_der_object

CsrAttrValue = str | bytes
"""An attribute value: a dotted OID, or the raw DER of any other ASN.1 value."""


@dataclass(frozen=True)
class CsrAttribute:
    """An `Attribute { type, values SET SIZE (1..MAX) }` entry of CsrAttrs.

    `values` keep their order; DER encoding sorts them, as SET OF requires.
    """

    oid: str
    values: tuple[CsrAttrValue, ...]

    def __post_init__(self) -> None:
        _check_oid(self.oid)
        if not self.values:
            raise ValueError(f"attribute {self.oid} needs at least one value")
        for value in self.values:
            if isinstance(value, str):
                _check_oid(value)
            elif isinstance(value, bytes):
                try:
                    tlv = read_tlv(value)
                except ValueError as exc:
                    raise ValueError(f"attribute {self.oid}: value is not DER ({exc})") from None
                if tlv.end != len(value):
                    raise ValueError(f"attribute {self.oid}: value has trailing bytes")
            else:
                raise TypeError("attribute values are dotted OID strings or DER bytes")


CsrAttrItem = str | CsrAttribute
CsrAttrs = tuple[CsrAttrItem, ...]
"""Bare OIDs and attributes, in wire order."""


def _check_oid(dotted: str) -> str:
    try:
        x509.ObjectIdentifier(dotted)
    except ValueError:
        raise ValueError(f"not a dotted OID: {dotted!r}") from None
    return dotted


def _oid_der(dotted: str) -> bytes:
    return bytes(der_encoder.encode(univ.ObjectIdentifier(dotted)))


def encode_csrattrs(items: Iterable[CsrAttrItem]) -> bytes:
    """DER-encode CsrAttrs (RFC 8951 §4).

    Args:
        items: dotted OID strings and `CsrAttribute`s; the order is kept.

    Returns:
        DER bytes; an empty sequence is `30 00` ("nothing requested").
    """
    sequence = rfc7030.CsrAttrs()
    sequence.clear()  # an empty SEQUENCE OF is a value, not an unset schema
    for item in items:
        choice = rfc7030.AttrOrOID()
        if isinstance(item, str):
            choice["oid"] = univ.ObjectIdentifier(_check_oid(item))
        elif isinstance(item, CsrAttribute):
            attribute = choice["attribute"]
            attribute["attrType"] = univ.ObjectIdentifier(item.oid)
            for value in item.values:
                raw = _oid_der(value) if isinstance(value, str) else value
                attribute["attrValues"].append(univ.Any(raw))
        else:
            raise TypeError("CsrAttrs items are dotted OID strings or CsrAttribute")
        sequence.append(choice)
    return bytes(der_encoder.encode(sequence))


def decode_csrattrs(der: bytes) -> CsrAttrs:
    """Decode DER CsrAttrs. Values that are OIDs come back as dotted strings, others as DER.

    Raises:
        MalformedBody: not one DER CsrAttrs, trailing bytes, or an attribute without values.
    """
    single_der_object(der, "CSR attributes")
    try:
        check_der_tree(der)
        decoded, rest = der_decoder.decode(der, asn1Spec=rfc7030.CsrAttrs())
        if rest:
            raise MalformedBody("CSR attributes: trailing bytes")
        items: list[CsrAttrItem] = []
        for choice in decoded:
            if choice.getName() == "oid":
                items.append(str(choice["oid"]))
                continue
            attribute = choice["attribute"]
            values = tuple(_value(bytes(v.asOctets())) for v in attribute["attrValues"])
            items.append(CsrAttribute(oid=str(attribute["attrType"]), values=values))
    except (PyAsn1Error, ValueError) as exc:
        raise MalformedBody(f"CSR attributes: not a valid CsrAttrs ({_short(exc)})") from None
    return tuple(items)


def with_challenge_password(items: CsrAttrs) -> CsrAttrs:
    """`items` with the bare challengePassword OID first, unless it is listed already.

    RFC 7030 §3.5: a server that requires identity/PoP linking MUST list challengePassword.
    """
    oid = CHALLENGE_PASSWORD.dotted_string
    if any(_key(item)[1] == oid for item in items):
        return items
    return (oid, *items)


def _value(raw: bytes) -> CsrAttrValue:
    if raw[:1] != bytes([TAG_OID]):
        return raw
    oid, rest = der_decoder.decode(raw, asn1Spec=univ.ObjectIdentifier())
    if rest:
        raise ValueError("trailing bytes after an OID value")
    return str(oid)


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:80]


# Config text: entries separated by commas; an attribute is `TYPE=V1+V2` (or `TYPE:V1+V2`).
_ATTRIBUTE_RE = re.compile(r"([^=:]+)[=:](.*)", re.DOTALL)
_NAMES_LOWER = {name.lower(): oid for name, oid in NAMED_OIDS.items()}


def parse_csrattrs_spec(text: str) -> CsrAttrs:
    """Parse the config form of CSR attributes.

    Example: `challengePassword, ecdsa-with-SHA384, id-ecPublicKey=secp384r1,
    extensionRequest=macAddress, 1.2.3.4`. Names come from `python_est.oids.NAMED_OIDS`
    (case-insensitive); anything else must be a dotted OID. A value of digits is an INTEGER
    (`rsaEncryption=4096`, RFC 9908's key size). Blank text means no attributes.

    Raises:
        ValueError: an unknown name, an empty entry or value, or a repeated entry.
    """
    if not text.strip():
        return ()
    items: list[CsrAttrItem] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            raise ValueError("empty entry in the CSR attributes list (check the commas)")
        match = _ATTRIBUTE_RE.fullmatch(entry)
        if match is None:
            item: CsrAttrItem = _resolve(entry)
        else:
            values = [v.strip() for v in match.group(2).split("+")]
            if not all(values):
                raise ValueError(f"attribute {match.group(1).strip()!r} has an empty value")
            item = CsrAttribute(
                oid=_resolve(match.group(1).strip()),
                values=tuple(_integer_der(v) if v.isdigit() else _resolve(v) for v in values),
            )
        if _key(item) in {_key(seen) for seen in items}:
            raise ValueError(f"{entry!r} is listed twice (give one attribute several +values)")
        items.append(item)
    return tuple(items)


def _integer_der(digits: str) -> bytes:
    return bytes(der_encoder.encode(univ.Integer(int(digits))))


def decode_integer(der: bytes) -> int | None:
    """The value of a DER INTEGER, or None when `der` is not exactly one."""
    if der[:1] != b"\x02":
        return None
    try:
        value, rest = der_decoder.decode(der, asn1Spec=univ.Integer())
    except PyAsn1Error:
        return None
    return None if rest else int(value)


def _key(item: CsrAttrItem) -> tuple[str, str]:
    return ("oid", item) if isinstance(item, str) else ("attribute", item.oid)


def _resolve(name: str) -> str:
    oid = NAMED_OIDS.get(name) or _NAMES_LOWER.get(name.lower())
    if oid is not None:
        return oid.dotted_string
    if re.fullmatch(r"[0-9]+(\.[0-9]+)+", name):
        return _check_oid(name)
    known = ", ".join(sorted(NAMED_OIDS))
    raise ValueError(f"unknown OID name {name!r}; use a dotted OID or one of: {known}")
