"""The EST client: library (`EstClient`) behind `python-est client ...` and scripts/est_client.py.

Split by concept: `transport` (one HTTP exchange over Python `ssl` or tlslite TLS-SRP, server
certificate verification), `est` (the EST operations, 202 retries), `files` (keys, CSRs,
certificates, fingerprints and their files), `workflow` (the operator's five-step check).
"""

from __future__ import annotations

from python_est.client.est import (
    Credentials,
    EnrollmentPending,
    EstClient,
    HttpStatusError,
    ServerKey,
    retry_after_seconds,
)
from python_est.client.files import (
    ClientKey,
    build_csr,
    fingerprint,
    is_self_signed,
    load_certificates,
    load_csr,
    load_private_key,
    new_key,
    normalize_fingerprint,
    parse_key_type,
    renewal_csr,
    write_certificates,
    write_private_key,
)
from python_est.client.sealed import KeyOpener
from python_est.client.transport import (
    CertificateFiles,
    ClientError,
    HttpReply,
    Password,
    Trust,
    TrustError,
    verify_server_chain,
)
from python_est.client.workflow import StepResult, WorkflowOptions, run_workflow

__all__ = [
    "CertificateFiles",
    "ClientError",
    "ClientKey",
    "Credentials",
    "EnrollmentPending",
    "EstClient",
    "HttpReply",
    "HttpStatusError",
    "KeyOpener",
    "Password",
    "ServerKey",
    "StepResult",
    "Trust",
    "TrustError",
    "WorkflowOptions",
    "build_csr",
    "fingerprint",
    "is_self_signed",
    "load_certificates",
    "load_csr",
    "load_private_key",
    "new_key",
    "normalize_fingerprint",
    "parse_key_type",
    "renewal_csr",
    "retry_after_seconds",
    "run_workflow",
    "verify_server_chain",
    "write_certificates",
    "write_private_key",
]
