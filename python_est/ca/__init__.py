"""The embedded certificate authority: create or load CA material, issue certificates from CSRs.

Everything here takes and returns objects or bytes; reading and writing files is the caller's job.
The package is split by concept: `authority` (the `CertificateAuthority`), `rules` (what the CA
accepts from a CSR and what it puts in a certificate) and `pem` (encoding and loading).
"""

from __future__ import annotations

from python_est.ca.authority import CaMaterial, CertificateAuthority
from python_est.ca.pem import certificate_pem, load_pem_certificates, private_key_pem
from python_est.ca.rules import CLOCK_SKEW, SERIAL_BITS, IpAddress, IssuerPrivateKey

__all__ = [
    "CLOCK_SKEW",
    "SERIAL_BITS",
    "CaMaterial",
    "CertificateAuthority",
    "IpAddress",
    "IssuerPrivateKey",
    "certificate_pem",
    "load_pem_certificates",
    "private_key_pem",
]
