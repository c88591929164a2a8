"""Subject policy: the shape of the names in a CSR, how names compare, and which names a password
user may obtain. Pure functions, the one home of these rules (issue 13 items 2 and 3).

Comparison, used everywhere (password CN check, certificate-holder rule, reenrollment, RA renewal
on behalf of a device):
- Subject attribute values compare exactly, after Unicode NFC normalisation only: no case folding
  and no white-space collapsing, since `device1` and `Device1` can be two accounts. The ASN.1
  string type is ignored (a CA re-encoding PrintableString as UTF8String must not break renewal,
  RFC 5280 §7.1). Names have the same RDNs in the same order; a multi-valued RDN compares as a
  multiset, so `CN=a+CN=a` is not `CN=a`.
- DNS names compare case-insensitively in ASCII only (IDNA A-labels; RFC 4343); a non-ASCII
  dNSName is refused outright. E-mail addresses compare the domain case-insensitively (ASCII) and
  the local part exactly (RFC 5321 §2.4). IP addresses compare by value, URIs exactly.

Shape, for every requester (RA and certificate holders too): no control character (C0, DEL, C1)
and no bidirectional override, isolate or mark in any subject value or subjectAltName, since
they make a name display as another one; caps on RDNs, attributes and extensions.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from cryptography import x509
from cryptography.x509.oid import NameOID

from python_est.errors import InvalidCsr
from python_est.profile import SUBJECT_ATTRIBUTE_NAMES, IssuanceProfile
from python_est.wire.csrtemplate import general_name_der

# Bidirectional formatting characters (Unicode UAX #9): embeddings and overrides, isolates,
# and the implicit marks (LRM, RLM, ALM).
_BIDI = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)] + [chr(c) for c in range(0x2066, 0x206A)]
) | {"\u200e", "\u200f", "\u061c"}
_OID_NAMES = {oid.dotted_string: name for name, oid in SUBJECT_ATTRIBUTE_NAMES.items()}
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

Named = x509.CertificateSigningRequest | x509.Certificate


def unsafe_character(text: str) -> str | None:
    """The first control or bidi formatting character in `text` as `U+XXXX`, or None."""
    for char in text:
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F or char in _BIDI:
            return f"U+{code:04X}"
    return None


def attribute_name(oid: x509.ObjectIdentifier) -> str:
    """The short name of a subject attribute type (`O`, `serialNumber`), else its dotted OID."""
    return _OID_NAMES.get(oid.dotted_string, oid.dotted_string)


def quote(text: str) -> str:
    """Client-supplied text for an error detail: escaped by repr, one line, bounded."""
    return repr(text if len(text) <= 80 else text[:80] + "...")


# --- the shape of a CSR's names (400 for everyone) ---------------------------------------------


def check_csr_names(csr: x509.CertificateSigningRequest, profile: IssuanceProfile) -> None:
    """Refuse a CSR whose names are oversized or contain characters that deceive a reader.

    Raises:
        InvalidCsr: 400 naming the cap or the attribute and character.
    """
    try:
        subject = csr.subject
    except ValueError:
        # cryptography refuses an RDN holding the same attribute twice (CN=a+CN=a).
        raise InvalidCsr("CSR subject is malformed (a repeated attribute in one RDN?)") from None
    if len(subject.rdns) > profile.max_rdns:
        raise InvalidCsr(f"CSR subject has {len(subject.rdns)} RDNs (at most {profile.max_rdns})")
    if len(subject) > profile.max_attributes:
        raise InvalidCsr(
            f"CSR subject has {len(subject)} attributes (at most {profile.max_attributes})"
        )
    try:
        attributes = len(list(csr.attributes))
        extensions = len(csr.extensions)
    except (ValueError, x509.DuplicateExtension):
        raise InvalidCsr("malformed CSR attributes") from None
    if attributes > profile.max_attributes:
        raise InvalidCsr(f"CSR has {attributes} attributes (at most {profile.max_attributes})")
    if extensions > profile.max_extensions:
        raise InvalidCsr(f"CSR requests {extensions} extensions (at most {profile.max_extensions})")
    problem = _name_problem(subject, "subject")
    if problem is None:
        problem = _sans_problem(sans_of(csr))
    if problem is not None:
        raise InvalidCsr(problem)


def _name_problem(name: x509.Name, where: str) -> str | None:
    for attr in name:
        if isinstance(attr.value, str):
            char = unsafe_character(attr.value)
            if char is not None:
                return f"{where} {attribute_name(attr.oid)} contains the control character {char}"
    return None


def _sans_problem(sans: Iterable[x509.GeneralName]) -> str | None:
    for san in sans:
        if isinstance(san, x509.DirectoryName):
            problem = _name_problem(san.value, "subjectAltName directoryName")
            if problem is not None:
                return problem
            continue
        if not isinstance(san, x509.DNSName | x509.RFC822Name | x509.UniformResourceIdentifier):
            continue
        char = unsafe_character(san.value)
        if char is not None:
            return f"subjectAltName {_san_kind(san)} contains the control character {char}"
        if isinstance(san, x509.DNSName) and not san.value.isascii():
            return (
                f"subjectAltName DNS {quote(san.value)} is not ASCII: send IDNA A-labels "
                "(RFC 5280 §7.2)"
            )
    return None


# --- comparison --------------------------------------------------------------------------------


def names_equal(a: x509.Name, b: x509.Name) -> bool:
    """Compare two Names exactly (see the module comment): NFC values, RDN multisets."""
    if a.public_bytes() == b.public_bytes():
        return True
    if len(a.rdns) != len(b.rdns):
        return False
    return all(_rdn_key(x) == _rdn_key(y) for x, y in zip(a.rdns, b.rdns, strict=True))


def values_equal(a: str, b: str) -> bool:
    """Two attribute values as `names_equal` compares them: equal after NFC."""
    return unicodedata.normalize("NFC", a) == unicodedata.normalize("NFC", b)


def _value_key(value: str | bytes) -> str | bytes:
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


def _rdn_key(rdn: x509.RelativeDistinguishedName) -> Counter[tuple[str, str | bytes]]:
    return Counter((attr.oid.dotted_string, _value_key(attr.value)) for attr in rdn)


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only (RFC 4343): `K` (KELVIN SIGN) stays what it is."""
    return text.translate(_ASCII_UPPER)


def san_key(name: x509.GeneralName) -> tuple[str, object]:
    """What identifies a subjectAltName for comparison (see the module comment)."""
    if isinstance(name, x509.DNSName):
        return ("dns", ascii_lower(name.value))
    if isinstance(name, x509.RFC822Name):
        local, at, domain = name.value.rpartition("@")
        return ("email", f"{local}{at}{ascii_lower(domain)}")
    if isinstance(name, x509.IPAddress):
        return ("ip", name.value)
    if isinstance(name, x509.UniformResourceIdentifier):
        return ("uri", name.value)
    if isinstance(name, x509.DirectoryName):
        return ("dirname", name.value.public_bytes())
    return (type(name).__name__, name)


def sans_of(item: Named) -> list[x509.GeneralName]:
    """The subjectAltNames of a CSR or certificate; empty without the extension.

    Raises:
        InvalidCsr: the extensions cannot be read.
    """
    try:
        return list(item.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        return []
    except (ValueError, x509.DuplicateExtension) as exc:
        raise InvalidCsr("the CSR extensionRequest is malformed") from exc


def same_names(a: Named, b: Named) -> bool:
    """Equal Subjects and equal subjectAltName sets (both absent is a match)."""
    if not names_equal(a.subject, b.subject):
        return False
    return {san_key(n) for n in sans_of(a)} == {san_key(n) for n in sans_of(b)}


# --- what a requester may choose (403) ---------------------------------------------------------


def fixed_refusal(subject: x509.Name, profile: IssuanceProfile) -> str | None:
    """Why `subject` conflicts with the profile's fixed attributes, or None."""
    fixed: dict[str, list[str]] = {}
    for oid, value in profile.subject_fixed:
        fixed.setdefault(oid.dotted_string, []).append(value)
    for attr in subject:
        wanted = fixed.get(attr.oid.dotted_string)
        if wanted is None:
            continue
        if not isinstance(attr.value, str) or not any(values_equal(attr.value, w) for w in wanted):
            return (
                f"subject {attribute_name(attr.oid)} is fixed by this CA to "
                f"{quote(wanted[0])}; the CSR asks for a different value"
            )
    return None


def password_refusal(
    csr: x509.CertificateSigningRequest,
    user: str,
    allowed: Sequence[str],
    profile: IssuanceProfile,
) -> str | None:
    """Why password user `user` may not obtain the names in `csr` (`password_subjects = own`).

    The subject needs at least one CN, and every CN must be one of `allowed` (exactly, NFC).
    Other attribute types must be listed in the profile's `subject_attributes` or fixed by its
    `subject_fixed`. Every subjectAltName must be one of `allowed` (DNS names and e-mail domains
    ASCII case-insensitively, IP addresses by value) or prescribed by the label (RFC 9908).
    """
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        return f"the subject must carry a CN allowed for user {quote(user)}"
    for attr in names:
        value = attr.value if isinstance(attr.value, str) else attr.value.hex()
        if not any(values_equal(value, name) for name in allowed):
            return f"subject CN {quote(value)} is not allowed for user {quote(user)}"
    chosen = profile.subject_attributes | {oid for oid, _ in profile.subject_fixed}
    for attr in csr.subject:
        if attr.oid != NameOID.COMMON_NAME and attr.oid not in chosen:
            return (
                f"subject attribute {attribute_name(attr.oid)} may not be chosen by password "
                "users (see subject_attributes)"
            )
    permitted = {_allowed_key(kind, text) for text in allowed for kind in _SAN_KINDS.values()}
    for san in sans_of(csr):
        if profile.prescribed_san and general_name_der(san) in profile.prescribed_san:
            continue  # the label prescribes it for every requester (RFC 9908)
        kind = _SAN_KINDS.get(type(san))
        if kind is None:
            return f"subjectAltName of type {type(san).__name__} is not allowed for passwords"
        if san_key(san) not in permitted:
            return (
                f"subjectAltName {kind} {quote(str(san.value))} is not allowed for user "
                f"{quote(user)}"
            )
    return None


_SAN_KINDS: dict[type[x509.GeneralName], str] = {
    x509.DNSName: "DNS",
    x509.RFC822Name: "email",
    x509.UniformResourceIdentifier: "URI",
    x509.IPAddress: "IP",
}


def _san_kind(name: x509.GeneralName) -> str:
    return _SAN_KINDS.get(type(name), type(name).__name__)


def _allowed_key(kind: str, text: str) -> tuple[str, object]:
    # An allow-list entry stands for a name of any kind it can be read as.
    if kind == "DNS":
        return ("dns", ascii_lower(text))
    if kind == "email":
        local, at, domain = text.rpartition("@")
        return ("email", f"{local}{at}{ascii_lower(domain)}")
    if kind == "IP":
        try:
            return ("ip", ipaddress.ip_address(text))
        except ValueError:
            return ("ip", None)
    return ("uri", text)
