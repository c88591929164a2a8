"""The embedded certificate authority: create or load CA material, issue certificates from CSRs.

Everything here takes and returns objects or bytes; reading and writing files is the caller's job.
The package is split by concept: `authority` (the `CertificateAuthority` and its issuance),
`material` (new roots and issuing CAs, CAs loaded from PEM or a token key), `rules` (what the CA
accepts from a CSR and what it puts in a certificate), `pem` (encoding and loading), `crl`
(signed revocation lists) and `ocsp` (OCSP requests read, responses built and signed);
`signer` signs with a key in memory or on a token, and `pkcs11` holds a key on a PKCS#11 token.
"""

from __future__ import annotations

from python_est.ca.authority import CertificateAuthority
from python_est.ca.crl import REASON_FLAGS, Revocation, build_crl, can_sign_crls, crl_number
from python_est.ca.material import CaMaterial
from python_est.ca.pem import (
    certificate_pem,
    certificates_pem,
    load_pem_certificates,
    private_key_pem,
)
from python_est.ca.rules import CLOCK_SKEW, SERIAL_BITS, IpAddress, IssuerPrivateKey
from python_est.ca.signer import (
    CaKey,
    ExternalKey,
    sign_bytes,
    sign_ocsp_response,
    verify_signature,
)

__all__ = [
    "CLOCK_SKEW",
    "REASON_FLAGS",
    "SERIAL_BITS",
    "CaKey",
    "CaMaterial",
    "CertificateAuthority",
    "ExternalKey",
    "IpAddress",
    "IssuerPrivateKey",
    "Revocation",
    "build_crl",
    "can_sign_crls",
    "certificate_pem",
    "certificates_pem",
    "crl_number",
    "load_pem_certificates",
    "private_key_pem",
    "sign_bytes",
    "sign_ocsp_response",
    "verify_signature",
]
