"""The X.509 extension policies of client chain validation (`chain`, `idevid`)."""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.verification import Criticality, ExtensionPolicy

# EST device certificates often lack a subjectAltName or an authorityKeyIdentifier, and their CAs
# a keyUsage, all of which the Web PKI profile requires. Relax exactly those: a CA must still
# assert basicConstraints cA (checked by the path builder), and the leaf keeps the other Web PKI
# end-entity rules (EKU, no cA, key sizes, signature algorithms).
CA_POLICY = ExtensionPolicy.permit_all().require_present(
    x509.BasicConstraints, Criticality.AGNOSTIC, None
)
EE_POLICY = (
    ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
    .may_be_present(x509.AuthorityKeyIdentifier, Criticality.AGNOSTIC, None)
)
