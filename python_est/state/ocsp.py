"""The delegated OCSP signer in the state directory (`ocsp/signer.pem`, `ocsp/signer.key`).

Used when `[ocsp] signer = delegated`. `python-est init` creates it when it is missing and
`python-est init --ocsp-signer` replaces it; `serve` only loads it, and stops with the command to
run when it is missing or does not belong to the CA.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from cryptography import x509

from python_est.ca import CertificateAuthority, certificate_pem, private_key_pem
from python_est.ca.ocsp import ResponderCertificate, issue_responder, responder_problem
from python_est.ca.pem import load_issuer_key, same_public_key
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.fileio import atomic_write, ensure_private_dir
from python_est.state.guards import init_command
from python_est.statedir import StateDir

# A signer whose revocation nobody checks (id-pkix-ocsp-nocheck) should be short-lived
# (RFC 6960 §4.2.2.2.1); rerun `init --ocsp-signer` before it expires.
SIGNER_VALIDITY_DAYS = 90
# Warn at start-up and on every reload once less than this is left.
SIGNER_WARN_DAYS = 14

log = logging.getLogger("python_est.ocsp")


def load_ocsp_signer(config: Config, ca: CertificateAuthority) -> ResponderCertificate | None:
    """The delegated signer `[ocsp]` asks for, or None when the CA signs itself.

    Raises:
        ConfigError: `signer = delegated` and the files are missing, unreadable, do not match,
            are expired, or were not issued by `ca` as an OCSP signer.
    """
    if not config.ocsp.enabled or config.ocsp.signer != "delegated":
        return None
    layout = StateDir(config.server.state_dir)
    remedy = f"create it with `{init_command(config)} --ocsp-signer`"
    try:
        cert_pem = layout.ocsp_signer_cert.read_bytes()
        key_pem = layout.ocsp_signer_key.read_bytes()
    except FileNotFoundError as exc:
        raise _error(config, f"{exc.filename} is missing; {remedy}") from None
    except OSError as exc:
        raise _error(config, f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = load_issuer_key(key_pem)
    except ValueError as exc:
        raise _error(config, f"{layout.ocsp_signer_cert.parent}: {exc}") from None
    problem = responder_problem(ca, cert)
    if problem is None and not same_public_key(key.public_key(), cert.public_key()):
        problem = "its key does not match"
    left = cert.not_valid_after_utc - datetime.now(timezone.utc)
    if problem is None and left <= timedelta(0):
        problem = "it has expired"
    if problem is not None:
        raise _error(config, f"{layout.ocsp_signer_cert} cannot sign: {problem}; {remedy}")
    if left < timedelta(days=SIGNER_WARN_DAYS):
        # Clients refuse responses from an expired signer: every OCSP answer would fail.
        log.warning(
            "the delegated OCSP signer %s expires on %s; renew it with `%s --ocsp-signer` "
            "and reload",
            layout.ocsp_signer_cert,
            cert.not_valid_after_utc.date(),
            init_command(config),
        )
    return ResponderCertificate(cert, key)


def create_ocsp_signer(config: Config, ca: CertificateAuthority) -> ResponderCertificate:
    """Issue a new delegated OCSP signer under `ca` and write it (key 0600), replacing any."""
    layout = StateDir(config.server.state_dir)
    signer = issue_responder(ca, validity_days=SIGNER_VALIDITY_DAYS)
    ensure_private_dir(layout.ocsp_signer_key.parent)
    atomic_write(layout.ocsp_signer_key, private_key_pem(signer.private_key))
    atomic_write(layout.ocsp_signer_cert, certificate_pem(signer.certificate), mode=0o644)
    return signer


def _error(config: Config, problem: str) -> ConfigError:
    return ConfigError(config.source, "ocsp", "signer", problem)
