"""A CSR decoded for the operator who approves it (`python-est requests show`).

Every value the requester chose is shown attribute by attribute, quoted and escaped
(`safetext.quote`): a newline, an escape sequence or a bidirectional override appears as a
backslash escape, never as a control, so what the terminal shows is what would be certified.
A value with non-ASCII letters is shown a second time with those letters as `\\uXXXX`, so a
look-alike (Cyrillic a, U+0430, in admin) is visible too.
"""

from __future__ import annotations

from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtensionOID

from python_est.oids import CHALLENGE_PASSWORD, EXTENSION_REQUEST
from python_est.safetext import escape_ascii, quote

_HEX_SHOWN = 64  # bytes of an opaque value shown in hex


def describe_csr(csr: x509.CertificateSigningRequest) -> list[str]:
    """The CSR as indented lines: subject RDNs, SANs, key, signature, extensions, attributes."""
    return [
        *_subject(csr.subject),
        *_sans(csr),
        f"  public key: {_key(csr)}",
        f"  signature: {_signature(csr)}",
        *_extensions(csr),
        *_attributes(csr),
    ]


def oid_text(oid: x509.ObjectIdentifier) -> str:
    """`name (dotted)` for an OID cryptography knows, else the dotted string alone."""
    name = oid._name
    return oid.dotted_string if name == "Unknown OID" else f"{name} ({oid.dotted_string})"


def value_text(value: str) -> str:
    """`value` quoted and escaped, plus its ASCII-only form when it holds non-ASCII text."""
    shown = quote(value)
    plain = f'"{escape_ascii(value)}"'
    # Only printable non-ASCII letters differ between the two forms.
    return shown if plain == shown else f"{shown} (as ASCII: {plain})"


def _subject(name: x509.Name) -> Iterator[str]:
    if len(name) == 0:
        yield "  subject: (empty)"
        return
    yield f"  subject: {quote(name.rfc4514_string())}"
    for number, rdn in enumerate(name.rdns, start=1):
        # A multi-valued RDN (RFC 5280 §4.1.2.4) shows each of its attributes, marked with +.
        for position, attribute in enumerate(rdn):
            lead = f"  RDN {number}:" if position == 0 else "        +"
            yield f"{lead} {oid_text(attribute.oid)} = {_attribute_value(attribute)}"


def _attribute_value(attribute: x509.NameAttribute[str | bytes]) -> str:
    value = attribute.value
    if isinstance(value, bytes):
        return f"({len(value)} bytes: {value.hex()})"
    return value_text(value)


def _sans(csr: x509.CertificateSigningRequest) -> Iterator[str]:
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        yield "  subjectAltName: (none)"
        return
    except (ValueError, x509.DuplicateExtension) as exc:
        yield f"  subjectAltName: unreadable ({quote(str(exc))})"
        return
    yield f"  subjectAltName: {len(names)} name(s)"
    for general in names:
        yield f"    {_general_name(general)}"


def _general_name(general: x509.GeneralName) -> str:
    if isinstance(general, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
        kind = {x509.DNSName: "DNS", x509.RFC822Name: "email"}.get(type(general), "URI")
        return f"{kind}: {value_text(general.value)}"
    if isinstance(general, x509.IPAddress):
        return f"IP: {general.value}"
    if isinstance(general, x509.DirectoryName):
        return f"dirName: {quote(general.value.rfc4514_string())}"
    if isinstance(general, x509.RegisteredID):
        return f"registeredID: {oid_text(general.value)}"
    if isinstance(general, x509.OtherName):
        return f"otherName {oid_text(general.type_id)}: {_hex(general.value)}"
    return f"{type(general).__name__}: {quote(str(general.value))}"


def _key(csr: x509.CertificateSigningRequest) -> str:
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        return f"unreadable ({quote(str(exc))})"
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size} bits"
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC {key.curve.name} ({key.key_size} bits)"
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return type(key).__name__.removesuffix("PublicKey")
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size} bits"
    return type(key).__name__


def _signature(csr: x509.CertificateSigningRequest) -> str:
    valid = "valid" if csr.is_signature_valid else "INVALID"
    return f"{oid_text(csr.signature_algorithm_oid)}, {valid}"


def _extensions(csr: x509.CertificateSigningRequest) -> Iterator[str]:
    try:
        extensions = list(csr.extensions)
    except (ValueError, x509.DuplicateExtension) as exc:
        yield f"  extensions requested: unreadable ({quote(str(exc))})"
        return
    if not extensions:
        yield "  extensions requested: (none)"
        return
    yield f"  extensions requested: {len(extensions)}"
    for extension in extensions:
        critical = ", critical" if extension.critical else ""
        yield f"    {oid_text(extension.oid)}{critical}: {_extension_value(extension)}"


def _extension_value(extension: x509.Extension[x509.ExtensionType]) -> str:
    value = extension.value
    if extension.oid == ExtensionOID.SUBJECT_ALTERNATIVE_NAME:
        return "(listed above)"
    if isinstance(value, x509.ExtendedKeyUsage):
        return ", ".join(oid_text(oid) for oid in value)
    if isinstance(value, x509.BasicConstraints):
        return f"CA={value.ca}, pathlen={value.path_length}"
    if isinstance(value, x509.KeyUsage):
        return ", ".join(_key_usages(value)) or "(none)"
    if isinstance(value, x509.UnrecognizedExtension):
        return _hex(value.value)
    return quote(repr(value))


def _key_usages(usage: x509.KeyUsage) -> Iterator[str]:
    for name in (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
    ):
        if getattr(usage, name):
            yield name
    if usage.key_agreement:
        # Defined only with keyAgreement (RFC 5280 §4.2.1.3); cryptography raises otherwise.
        yield from (n for n in ("encipher_only", "decipher_only") if getattr(usage, n))


def _attributes(csr: x509.CertificateSigningRequest) -> Iterator[str]:
    try:
        attributes = list(csr.attributes)
    except ValueError as exc:
        yield f"  attributes: unreadable ({quote(str(exc))})"
        return
    # The extension request is the extensions listed above (RFC 2986 §4.1, RFC 2985 §5.4.2).
    others = [a for a in attributes if a.oid != EXTENSION_REQUEST]
    if not others:
        yield "  other attributes: (none)"
        return
    yield f"  other attributes: {len(others)}"
    for attribute in others:
        if attribute.oid == CHALLENGE_PASSWORD:
            # A secret of the requester's (RFC 7030 §3.5 may carry tls-unique here): not shown.
            yield f"    {oid_text(attribute.oid)}: present ({len(attribute.value)} bytes)"
        else:
            yield f"    {oid_text(attribute.oid)}: {_hex(attribute.value)}"


def _hex(data: bytes) -> str:
    shown = data[:_HEX_SHOWN].hex()
    return f"{len(data)} bytes: {shown}{'...' if len(data) > _HEX_SHOWN else ''}"
