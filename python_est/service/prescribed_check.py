"""A CSR against a label's RFC 9908 prescribed values, and what the CA fills in itself.

With `enforce_csrattrs`, the prescribed values are checked, not only their presence:

- an extension with a prescribed value must carry exactly that value (its DER); a prescribed
  critical flag must be set; a value left to the client (`*`) needs only the extension;
- a subjectAltName template: every prescribed name, at least one name of each fill-in kind
  (`ip:*`, `dirname:*`) and no name of any other kind;
- a subject template: exactly the template's attribute types, as many of each, and every
  prescribed value among them (a CSR can neither drop a prescribed OU nor add an O).

Whatever the enforcement, the CA fills in (`filled_profile`): every certificate of the label
carries the prescribed subject values (as fixed subject attributes), the prescribed
subjectAltNames and the prescribed extension values, so a requester who leaves them out of
its CSR cannot obtain a certificate wider than the label prescribes. RFC 9908 §2.6 (its new
text for RFC 7030 §2.6) has the server tell the client the values to use; the CA, which
decides the certificate's content (RFC 7030 §4.2.1), writes the same values.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from cryptography import x509

from python_est.errors import InvalidCsr
from python_est.profile import IssuanceProfile
from python_est.service.enforce import describe_oid
from python_est.service.prescribed import EXTENSION_NAMES, SAN, Prescription
from python_est.wire.csrtemplate import (
    SAN_PLACEHOLDERS,
    ExtensionSlot,
    attribute_value_text,
    general_names,
)

_NAMES = {oid: name for name, oid in EXTENSION_NAMES.items()}
# The kind of GeneralName a placeholder stands for: its tag ([7] iPAddress, [4] directoryName).
_PLACEHOLDER_TAGS = {value[0]: kind for kind, value in SAN_PLACEHOLDERS.items()}


def prescription_problems(
    prescription: Prescription, csr: x509.CertificateSigningRequest
) -> list[str]:
    """What `csr` gets wrong against `prescription`, one phrase each; empty when it complies."""
    try:
        requested = {
            ext.oid.dotted_string: (ext.critical, ext.value.public_bytes())
            for ext in csr.extensions
        }
    except (ValueError, x509.DuplicateExtension):
        raise InvalidCsr("malformed CSR extensionRequest") from None
    problems = []
    for slot in prescription.extensions:
        problem = _extension_problem(slot, requested.get(slot.oid))
        if problem is not None:
            problems.append(problem)
    if prescription.subject is not None:
        problems.extend(_subject_problems(prescription, csr.subject))
    return problems


def _extension_problem(slot: ExtensionSlot, found: tuple[bool, bytes] | None) -> str | None:
    name = _NAMES.get(slot.oid) or describe_oid(slot.oid)
    if found is None:
        return f"missing extension {name} (prescribed by /csrattrs, RFC 9908)"
    critical, value = found
    if slot.critical and not critical:
        return f"extension {name} must be critical"
    if slot.value is None:
        return None
    if slot.oid == SAN:
        return _san_problem(slot.value, value)
    if value != slot.value:
        return f"extension {name} must carry exactly the value /csrattrs prescribes"
    return None


def _san_problem(prescribed: bytes, requested: bytes) -> str | None:
    try:
        names = general_names(requested)
    except ValueError:
        return "subjectAltName is malformed"
    wanted = general_names(prescribed)
    fixed = [name for name in wanted if name not in SAN_PLACEHOLDERS.values()]
    slots = {name[0]: _PLACEHOLDER_TAGS[name[0]] for name in wanted if name not in fixed}
    missing = [name for name in fixed if name not in names]
    if missing:
        return f"subjectAltName lacks {len(missing)} name(s) /csrattrs prescribes"
    extra = [name for name in names if name not in fixed]
    for tag, kind in slots.items():
        if not any(name[0] == tag for name in extra):
            return f"subjectAltName needs a {kind} name filled in"
    if any(name[0] not in slots for name in extra):
        return "subjectAltName holds a name /csrattrs does not prescribe"
    return None


def _subject_problems(prescription: Prescription, subject: x509.Name) -> list[str]:
    template = prescription.subject or ()
    wanted = Counter(slot.oid for slot in template)
    present = Counter(attr.oid.dotted_string for attr in subject)
    problems = []
    for oid in sorted(set(wanted) | set(present)):
        label = describe_oid(oid)
        if present[oid] < wanted[oid]:
            problems.append(f"subject needs {wanted[oid]} {label} (subject template)")
        elif present[oid] > wanted[oid]:
            problems.append(f"subject has {present[oid]} {label}, the template {wanted[oid]}")
    values: Counter[tuple[str, str]] = Counter(
        (attr.oid.dotted_string, attr.value) for attr in subject if isinstance(attr.value, str)
    )
    for slot in template:
        if slot.value is None:
            continue
        text = attribute_value_text(slot.value)
        if values[(slot.oid, text or "")] > 0:
            values[(slot.oid, text or "")] -= 1
        else:
            problems.append(f"subject {describe_oid(slot.oid)} must be {text!r} (subject template)")
    return problems


def filled_profile(profile: IssuanceProfile, prescription: Prescription) -> IssuanceProfile:
    """`profile` with the prescribed values the CA writes into every certificate."""
    fixed = list(profile.subject_fixed)
    for slot in prescription.subject or ():
        text = attribute_value_text(slot.value) if slot.value is not None else None
        if text is not None and (x509.ObjectIdentifier(slot.oid), text) not in fixed:
            fixed.append((x509.ObjectIdentifier(slot.oid), text))
    extensions = tuple(
        (x509.ObjectIdentifier(slot.oid), slot.critical, slot.value)
        for slot in prescription.complete_extensions
        if slot.oid != SAN and slot.value is not None
    )
    san: tuple[bytes, ...] = ()
    san_critical = False
    for ext in prescription.extensions:
        if ext.oid == SAN and ext.value is not None:
            placeholders = SAN_PLACEHOLDERS.values()
            san = tuple(n for n in general_names(ext.value) if n not in placeholders)
            san_critical = ext.critical
    return replace(
        profile,
        subject_fixed=tuple(fixed),
        prescribed_extensions=extensions,
        prescribed_san=san,
        prescribed_san_critical=san_critical,
    )
