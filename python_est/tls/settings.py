"""tlslite `HandshakeSettings` for certificate and SRP connections, from the [tls] config."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from tlslite.api import HandshakeSettings
from tlslite.constants import CipherSuite

from python_est.config import TlsConfig, weak_tls_settings
from python_est.config.model import FORBIDDEN_KEY_EXCHANGES, TLS_VERSIONS

_STRONG_SIG_HASHES = ["sha512", "sha384", "sha256"]
_MAX_TICKET_LIFETIME = 7 * 24 * 3600  # tlslite's limit (and RFC 8446 §4.6.1's for TLS 1.3)


def validate_tls_names(cfg: TlsConfig) -> list[str]:
    """Problems that would make tlslite refuse the settings or select no cipher suite.

    `python_est.config` checks names and legacy rules; this adds what only tlslite knows:
    whether each side (certificate, SRP) is left with at least one suite.

    Returns:
        One sentence per problem; empty when the settings are usable.
    """
    problems = []
    if not cfg.allow_legacy:
        problems += [f"{item} needs allow_legacy" for item in weak_tls_settings(cfg)]
    forbidden = FORBIDDEN_KEY_EXCHANGES & set(cfg.key_exchange_names)
    problems += [f"key exchange {name} is never allowed" for name in sorted(forbidden)]
    try:
        cert, srp = _cert_settings(cfg).validate(), _srp_settings(cfg).validate()
    except (ValueError, KeyError) as exc:
        return [*problems, f"tlslite refuses the settings: {exc}"]
    if not _cert_suites(cert):
        problems.append("cipher_names, mac_names and key_exchange_names select no cipher suite")
    if not any(CipherSuite.getSrpAllSuites(srp, v) for v in srp.versions):
        problems.append(
            "srp_cipher_names and srp_mac_names select no SRP suite "
            "(RFC 5054 suites are AES-CBC or 3DES with HMAC-SHA1: use aes256, aes128 and sha)"
        )
    return problems


def build_settings(cfg: TlsConfig) -> tuple[Any, Any]:
    """Build the tlslite `HandshakeSettings` for certificate and for SRP connections.

    Returns:
        (certificate settings, SRP settings).

    Raises:
        ValueError: `validate_tls_names(cfg)` reports a problem.
    """
    problems = validate_tls_names(cfg)
    if problems:
        raise ValueError("; ".join(problems))
    cert = _cert_settings(cfg)
    # Tickets (keys set per handshake by the endpoint) live no longer than a cached session.
    cert.ticketLifetime = max(1, min(cfg.session_lifetime, _MAX_TICKET_LIFETIME))
    return prevalidated(cert), prevalidated(_srp_settings(cfg))


def with_ticket_keys(settings: Any, keys: Sequence[bytes]) -> Any:
    """`settings` sealing and opening session tickets with `keys` (validated again).

    Raises:
        ValueError: a key is not 16 or 32 bytes long.
    """
    changed = copy.copy(settings)
    changed.ticketKeys = [bytearray(key) for key in keys]
    return prevalidated(changed)


class _Prevalidated(HandshakeSettings):  # type: ignore[misc]
    """Settings that went through tlslite's `validate()` once, whose `validate()` is a copy.

    tlslite validates (and copies) the settings at the start of every handshake and again for
    a CertificateRequest: 0.05 ms each, several percent of a resumed handshake. Validation is
    idempotent, so the result is kept; tlslite only reassigns attributes of its copy.
    """

    def validate(self) -> _Prevalidated:
        return copy.copy(self)


def prevalidated(settings: Any) -> Any:
    """Validate tlslite settings now, once (raises tlslite's ValueError if they are wrong)."""
    checked = HandshakeSettings.validate(settings)
    result = _Prevalidated.__new__(_Prevalidated)
    result.__dict__.update(checked.__dict__)
    return result


def _versioned(low: str, high: str, cfg: TlsConfig) -> Any:
    settings = HandshakeSettings()
    settings.minVersion = TLS_VERSIONS[low]
    settings.maxVersion = TLS_VERSIONS[high]
    settings.versions = [
        v for v in settings.versions if settings.minVersion <= v <= settings.maxVersion
    ]
    # RFC 7366 encrypt-then-MAC and RFC 7627 extended master secret, both offered to every client.
    settings.useEncryptThenMAC = True
    settings.useExtendedMasterSecret = True
    if not cfg.allow_legacy:
        # SHA-1/SHA-224 signatures only for clients old enough to need legacy mode. This is
        # what signature_algorithms and the CertificateRequest advertise and what a client's
        # CertificateVerify may use (RFC 5246 §7.4.4), so DSA is held to the same hashes.
        settings.rsaSigHashes = list(_STRONG_SIG_HASHES)
        settings.ecdsaSigHashes = list(_STRONG_SIG_HASHES)
        settings.dsaSigHashes = list(_STRONG_SIG_HASHES)
    return settings


def _cert_settings(cfg: TlsConfig) -> Any:
    settings = _versioned(cfg.min_version, cfg.max_version, cfg)
    settings.cipherNames = list(cfg.cipher_names)
    settings.macNames = list(cfg.mac_names)
    settings.keyExchangeNames = list(cfg.key_exchange_names)
    return settings


def _srp_settings(cfg: TlsConfig) -> Any:
    # RFC 5054 suites end at TLS 1.2; a TLS 1.3-capable SRP client must be capped or it fails.
    settings = _versioned(cfg.srp_min_version, "1.2", cfg)
    settings.cipherNames = list(cfg.srp_cipher_names)
    settings.macNames = list(cfg.srp_mac_names)
    settings.keyExchangeNames = list(cfg.srp_key_exchange_names)
    return settings


def _cert_suites(settings: Any) -> list[int]:
    suites: list[int] = []
    for version in settings.versions:
        for getter in (
            CipherSuite.getTLS13Suites,
            CipherSuite.getEcdsaSuites,
            CipherSuite.getEcdheCertSuites,
            CipherSuite.getDheCertSuites,
            CipherSuite.getCertSuites,
        ):
            suites += getter(settings, version)
    return suites
