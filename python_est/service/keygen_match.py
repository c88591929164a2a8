"""How a /serverkeygen retry is recognised on a manual-approval label (RFC 7030 §4.4.1).

For /serverkeygen the server ignores the CSR's key, and some clients (GlobalSign's est) sign
every attempt with a fresh throwaway key, so the key cannot recognise the retry as it does for
/simpleenroll. What the certificate will say can: the requester, the subject and the SANs.
"""

from __future__ import annotations

import hashlib
import json

from cryptography import x509

from python_est.errors import InvalidCsr


def serverkeygen_match(csr: x509.CertificateSigningRequest, requester: str) -> str:
    """Lowercase hex SHA-256 of the requester, the subject and the set of SANs."""
    fields = ["serverkeygen/1", requester, csr.subject.rfc4514_string(), *sorted(_sans(csr))]
    return hashlib.sha256(json.dumps(fields).encode("utf-8")).hexdigest()


def _sans(csr: x509.CertificateSigningRequest) -> list[str]:
    try:
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    except (ValueError, x509.DuplicateExtension):
        raise InvalidCsr("the CSR extensionRequest is malformed") from None
    return [f"{type(name).__name__}:{_text(name)}" for name in names]


def _text(name: x509.GeneralName) -> str:
    if isinstance(name, x509.OtherName):
        return f"{name.type_id.dotted_string}:{name.value.hex()}"
    value = name.value
    if isinstance(value, x509.Name):
        return value.rfc4514_string()
    if isinstance(value, x509.ObjectIdentifier):
        return value.dotted_string
    return str(value)
