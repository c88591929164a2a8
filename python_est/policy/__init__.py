"""Who the peer is, and the pure decisions made about it.

Split by concept: `identity` (what TLS learned about the peer), `chain` (client certificate
chain validation), `authz` (authentication and authorization decisions, tls-unique linking),
`subject` (the shape of requested names, exact name comparison, what password users may choose).
"""

from __future__ import annotations

from python_est.policy.authz import (
    Authentication,
    BasicCredentials,
    authorize_enrollment,
    check_linking,
    check_reenrollment,
    parse_basic_authorization,
    satisfied_methods,
)
from python_est.policy.chain import ClientChainValidator
from python_est.policy.identity import AuthKind, ClientCertificate, PeerIdentity, TlsInfo
from python_est.policy.subject import (
    check_csr_names,
    fixed_refusal,
    names_equal,
    same_names,
)

__all__ = [
    "AuthKind",
    "Authentication",
    "BasicCredentials",
    "ClientCertificate",
    "ClientChainValidator",
    "PeerIdentity",
    "TlsInfo",
    "authorize_enrollment",
    "check_csr_names",
    "check_linking",
    "check_reenrollment",
    "fixed_refusal",
    "names_equal",
    "parse_basic_authorization",
    "same_names",
    "satisfied_methods",
]
