"""RFC 9908 prescribed values of a label: config text, and the /csrattrs items they add.

`csrattrs_subject` is a subject template (RFC 9908 §3.4): `CN=*, OU=myDept, OU=myGroup` asks
for a CN the client chooses and two OUs with exactly these values, in this order.

`csrattrs_extensions` lists extensions, separated by `;`, each `NAME = ITEM, ITEM...`:
`critical` marks it critical; `*` alone leaves the whole value to the client; `der:HEX` gives
the extnValue's DER as is. Named forms: subjectAltName (`dns:NAME`, `ip:ADDRESS`, `email:X`,
`uri:X`; `ip:*` and `dirname:*` are the RFC's fill-in placeholders), keyUsage (RFC 5280 bit
names) and extKeyUsage (clientAuth, serverAuth, cmcRA, or dotted OIDs).

What /csrattrs then carries (RFC 9908 §3.2, §3.4, §4): the label's `csrattrs` items as before
(the key type stays an attribute, RFC 8951 §4), one extensionRequest attribute holding the
extensions whose value is complete, and, when there is a subject or a value to fill in, a
CertificationRequestInfoTemplate with everything (clients that read templates use only it).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from cryptography import x509

from python_est import oids, wire
from python_est.profile import EKU_NAMES, SUBJECT_ATTRIBUTE_NAMES
from python_est.service.enforce import CsrRequirements
from python_est.wire.csrtemplate import (
    SAN_PLACEHOLDERS,
    CsrTemplate,
    ExtensionSlot,
    SubjectSlot,
    attribute_value_der,
    der_sequence,
    dummy_rsa_public_key,
    encode_extensions,
    encode_template,
    general_name_der,
    general_names,
    oid_der,
)
from python_est.wire.der import check_der_tree

SAN = "2.5.29.17"
KEY_USAGE = "2.5.29.15"
EXT_KEY_USAGE = "2.5.29.37"
EXTENSION_NAMES = {
    "subjectAltName": SAN,
    "keyUsage": KEY_USAGE,
    "extKeyUsage": EXT_KEY_USAGE,
    "subjectDirectoryAttributes": "2.5.29.9",
    "certificatePolicies": "2.5.29.32",
}
# The CA writes these itself from its own key and state; a label cannot prescribe them.
CA_OWNED = {
    "2.5.29.19": "basicConstraints",
    "2.5.29.14": "subjectKeyIdentifier",
    "2.5.29.35": "authorityKeyIdentifier",
    "2.5.29.31": "cRLDistributionPoints",
    "2.5.29.30": "nameConstraints",
}
_KEY_USAGE_BITS = {
    "digitalSignature": "digital_signature",
    "nonRepudiation": "content_commitment",
    "contentCommitment": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "encipherOnly": "encipher_only",
    "decipherOnly": "decipher_only",
}
_NULL = b"\x05\x00"
_CURVE_OIDS = {
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
}


@dataclass(frozen=True)
class Prescription:
    """A label's RFC 9908 prescribed values.

    Attributes:
        subject: the subject template, None when the label places no requirement on it.
        extensions: prescribed extensions, in config order.
    """

    subject: tuple[SubjectSlot, ...] | None = None
    extensions: tuple[ExtensionSlot, ...] = ()

    @property
    def complete_extensions(self) -> tuple[ExtensionSlot, ...]:
        """The extensions whose whole value is prescribed (nothing for the client to fill in)."""
        return tuple(slot for slot in self.extensions if is_complete(slot))

    @property
    def needs_template(self) -> bool:
        return self.subject is not None or len(self.complete_extensions) < len(self.extensions)


def is_complete(slot: ExtensionSlot) -> bool:
    """True when `slot` prescribes its whole value: present, and no fill-in placeholder."""
    if slot.value is None:
        return False
    if slot.oid != SAN:
        return True
    return not set(general_names(slot.value)) & set(SAN_PLACEHOLDERS.values())


def parse_subject(text: str) -> tuple[SubjectSlot, ...] | None:
    """`TYPE=VALUE` or `TYPE=*` entries separated by commas; blank text means no template."""
    if not text.strip():
        return None
    slots = []
    for entry in (part.strip() for part in text.split(",")):
        name, sep, value = entry.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"csrattrs_subject entry {entry!r} is not TYPE=VALUE or TYPE=*")
        oid = _subject_oid(name)
        if value == "*":
            slots.append(SubjectSlot(oid))
            continue
        try:
            slots.append(SubjectSlot(oid, attribute_value_der(oid, value)))
        except ValueError as exc:
            raise ValueError(f"csrattrs_subject {name}: {exc}") from None
    return tuple(slots)


def _subject_oid(name: str) -> str:
    oid = SUBJECT_ATTRIBUTE_NAMES.get(name)
    if oid is not None:
        return oid.dotted_string
    try:
        return x509.ObjectIdentifier(name).dotted_string
    except ValueError:
        known = ", ".join(SUBJECT_ATTRIBUTE_NAMES)
        raise ValueError(f"unknown subject attribute {name!r}; use one of {known}") from None


def parse_extensions(text: str) -> tuple[ExtensionSlot, ...]:
    """`NAME = ITEM, ...` entries separated by `;` (see the module comment)."""
    if not text.strip():
        return ()
    slots: list[ExtensionSlot] = []
    for entry in (part.strip() for part in text.split(";")):
        name, sep, rest = entry.partition("=")
        name = name.strip()
        items = [item.strip() for item in rest.split(",")]
        if not sep or not name or not all(items):
            raise ValueError(f"csrattrs_extensions entry {entry!r} is not NAME = VALUE, ...")
        oid = EXTENSION_NAMES.get(name) or _dotted(name)
        if oid in CA_OWNED:
            raise ValueError(f"{CA_OWNED[oid]} is written by the CA and cannot be prescribed")
        if any(slot.oid == oid for slot in slots):
            raise ValueError(f"extension {name} is listed twice (RFC 9908 §3.2)")
        critical = "critical" in items
        items = [item for item in items if item != "critical"]
        try:
            value = _extension_value(oid, items)
        except ValueError as exc:
            raise ValueError(f"csrattrs_extensions {name}: {exc}") from None
        slots.append(ExtensionSlot(oid, critical, value))
    return tuple(slots)


def _dotted(name: str) -> str:
    try:
        return x509.ObjectIdentifier(name).dotted_string
    except ValueError:
        known = ", ".join(EXTENSION_NAMES)
        raise ValueError(f"unknown extension {name!r}; use a dotted OID or {known}") from None


def _extension_value(oid: str, items: list[str]) -> bytes | None:
    if items == ["*"]:
        return None
    if not items:
        raise ValueError("no value (write * to leave it to the client)")
    if len(items) == 1 and items[0].startswith("der:"):
        try:
            der = bytes.fromhex(items[0][4:])
            check_der_tree(der)
        except ValueError as exc:
            raise ValueError(f"der: value is not one DER element ({exc})") from None
        return der
    if oid == SAN:
        return der_sequence([_general_name(item) for item in items])
    if oid == KEY_USAGE:
        return _key_usage(items)
    if oid == EXT_KEY_USAGE:
        usages = [EKU_NAMES.get(item) or x509.ObjectIdentifier(_dotted(item)) for item in items]
        return x509.ExtendedKeyUsage(usages).public_bytes()
    raise ValueError("give the value as der:HEX (or * for the client to fill in)")


def _general_name(item: str) -> bytes:
    kind, sep, value = item.partition(":")
    if sep and value == "*" and kind in SAN_PLACEHOLDERS:
        return SAN_PLACEHOLDERS[kind]
    name: x509.GeneralName
    if kind == "dns" and value:
        name = x509.DNSName(value)
    elif kind == "ip" and value:
        name = x509.IPAddress(ipaddress.ip_address(value))
    elif kind == "email" and value:
        name = x509.RFC822Name(value)
    elif kind == "uri" and value:
        name = x509.UniformResourceIdentifier(value)
    else:
        raise ValueError(f"{item!r} is not dns:, ip:, email:, uri: NAME, ip:* or dirname:*")
    return general_name_der(name)


def _key_usage(items: list[str]) -> bytes:
    unknown = [item for item in items if item not in _KEY_USAGE_BITS]
    if unknown:
        known = ", ".join(_KEY_USAGE_BITS)
        raise ValueError(f"unknown keyUsage bit {unknown[0]!r} (end-entity bits: {known})")
    chosen = {_KEY_USAGE_BITS[item] for item in items}
    flags = {bit: bit in chosen for bit in set(_KEY_USAGE_BITS.values())}
    return x509.KeyUsage(**flags, key_cert_sign=False, crl_sign=False).public_bytes()


def csrattrs_items(
    attrs: wire.CsrAttrs, prescription: Prescription, requirements: CsrRequirements
) -> wire.CsrAttrs:
    """The /csrattrs items: `attrs`, the extensionRequest, then the template.

    A bare `extensionRequest` in `attrs` marks where the prescribed extensionRequest goes
    (so a config can reproduce a given item order); otherwise it is appended.

    Raises:
        ValueError: `attrs` has an extensionRequest with values already (RFC 9908 §3.2 allows
            one such attribute).
    """
    items = list(attrs)
    request = oids.EXTENSION_REQUEST.dotted_string
    if prescription.extensions and any(
        isinstance(item, wire.CsrAttribute) and item.oid == request for item in attrs
    ):
        raise ValueError(
            "extensionRequest=... is in csrattrs and csrattrs_extensions is set; "
            "RFC 9908 §3.2 allows one extensionRequest attribute"
        )
    complete = prescription.complete_extensions
    if complete:
        attribute = wire.CsrAttribute(request, (encode_extensions(complete),))
        if request in items:
            items[items.index(request)] = attribute
        else:
            items.append(attribute)
    if prescription.needs_template:
        key_algorithm, public_key = _template_key(requirements)
        template = CsrTemplate(
            subject=prescription.subject,
            key_algorithm=key_algorithm,
            extensions=prescription.extensions,
            public_key=public_key,
        )
        oid = oids.CERTIFICATION_REQUEST_INFO_TEMPLATE.dotted_string
        items.append(wire.CsrAttribute(oid, (encode_template(template),)))
    return tuple(items)


def _template_key(
    requirements: CsrRequirements,
) -> tuple[tuple[str, bytes | None] | None, bytes | None]:
    # RFC 9908 §3.4: subjectPKInfo names one key type; several acceptable kinds cannot be said
    # there, so the template then leaves the key open and the key attributes stand alone. An
    # RSA size is given as a dummy public key with a modulus of that length.
    if len(requirements.keys) != 1:
        return None, None
    (choice,) = requirements.keys
    if choice.algorithm == "rsa":
        dummy = dummy_rsa_public_key(choice.bits) if choice.bits else None
        return (oids.RSA_ENCRYPTION.dotted_string, _NULL), dummy
    if choice.algorithm == "ec" and choice.curve is not None:
        return (oids.ID_EC_PUBLIC_KEY.dotted_string, oid_der(_CURVE_OIDS[choice.curve])), None
    return None, None
