"""The manufacturer CAs and CRLs of factory (IDevID) certificates (`[label:X] manufacturer_cas`,
`manufacturer_crls`; `policy.idevid`).

Read on every start and reload (SIGHUP), so a new CRL takes effect with `systemctl reload`.
Every certificate of a `manufacturer_cas` file is a trust anchor of that label. A CRL must be
signed by one of the label's manufacturer certificates; one that is not would never be
consulted, so it stops start-up instead of leaving revoked devices accepted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography import x509

from python_est.ca import load_pem_certificates
from python_est.config import Config, LabelConfig
from python_est.errors import ConfigError
from python_est.state.cafiles import read_file

log = logging.getLogger("python_est.idevid")


@dataclass(frozen=True)
class Manufacturers:
    """What the labels' manufacturer settings name.

    Attributes:
        anchors: label name to its manufacturer certificates (labels without any are absent).
        crls: each CRL with the manufacturer certificate that signed it.
    """

    anchors: dict[str, tuple[x509.Certificate, ...]]
    crls: tuple[tuple[x509.Certificate, x509.CertificateRevocationList], ...]


def load_manufacturers(config: Config) -> Manufacturers:
    """Read every label's manufacturer CAs and CRLs.

    Raises:
        ConfigError: a file is unreadable, holds no certificate or no CRL, or a CRL is not
            signed by a certificate of the same label's manufacturer_cas.
    """
    anchors: dict[str, tuple[x509.Certificate, ...]] = {}
    crls: list[tuple[x509.Certificate, x509.CertificateRevocationList]] = []
    for name, label in config.labels.items():
        if not label.manufacturer_cas:
            continue
        section = f"label:{name}" if name else "profile"
        certs = _certificates(config, section, label)
        anchors[name] = certs
        for path in label.manufacturer_crls:
            crl = _crl(config, section, path)
            signer = next((c for c in certs if _signed_by(crl, c)), None)
            if signer is None:
                raise ConfigError(
                    config.source,
                    section,
                    "manufacturer_crls",
                    f"{path} is not signed by a certificate of manufacturer_cas",
                )
            _warn_if_stale(section, path, crl)
            crls.append((signer, crl))
    return Manufacturers(anchors, tuple(crls))


def _certificates(config: Config, section: str, label: LabelConfig) -> tuple[x509.Certificate, ...]:
    found: list[x509.Certificate] = []
    for path in label.manufacturer_cas:
        try:
            certs = load_pem_certificates(read_file(config, section, "manufacturer_cas", path))
        except ValueError as exc:
            raise ConfigError(
                config.source, section, "manufacturer_cas", f"{path}: {exc}"
            ) from None
        if not certs:
            raise ConfigError(
                config.source, section, "manufacturer_cas", f"no certificate in {path}"
            )
        found.extend(certs)
    return tuple(dict.fromkeys(found))


def _crl(config: Config, section: str, path: Path) -> x509.CertificateRevocationList:
    data = read_file(config, section, "manufacturer_crls", path)
    try:
        if b"-----BEGIN X509 CRL-----" in data:
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except ValueError:
        raise ConfigError(
            config.source, section, "manufacturer_crls", f"{path} is not a CRL (PEM or DER)"
        ) from None


def _warn_if_stale(section: str, path: Path, crl: x509.CertificateRevocationList) -> None:
    # Loaded all the same: a stale CRL refuses its CA's devices (`policy.idevid`), which the
    # operator should learn now rather than from the devices.
    next_update = crl.next_update_utc
    if next_update is not None and next_update < datetime.now(timezone.utc):
        log.warning(
            "[%s] manufacturer_crls: %s is past its nextUpdate (%s): its CA's factory "
            "certificates are refused until a fresh CRL is installed and the server reloaded",
            section,
            path,
            next_update.isoformat(timespec="seconds"),
        )


def _signed_by(crl: x509.CertificateRevocationList, cert: x509.Certificate) -> bool:
    if crl.issuer != cert.subject:
        return False
    try:
        return crl.is_signature_valid(cert.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
