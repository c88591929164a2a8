"""Create the CA and server files that `[ca]` and `[tls]` `cert_file`/`key_file` name, when
neither exists yet (scripts/setup_certs.py: the older python-est made its certificates that way).

Only what is wholly absent is created. A pair with one file present, or a server certificate
without a configured CA to sign it, is refused with the key named: nothing is guessed and
nothing existing is replaced.
"""

from __future__ import annotations

from pathlib import Path

from python_est.ca import CertificateAuthority, certificate_pem, certificates_pem, private_key_pem
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.fileio import atomic_write
from python_est.state.server_tls import default_server_names


def write_configured_credentials(config: Config) -> list[str]:
    """Create the configured CA and server files that are missing; returns what was written.

    Every check runs before the first write, so a refusal leaves the disk as it was.

    Raises:
        ConfigError: a pair is half there, or a configured server certificate has no
            configured CA to be issued by, or the CA files cannot be read.
    """
    cfg, tls = config.ca, config.tls
    ca_files = _pair(cfg.cert_file, cfg.key_file)
    server_files = _pair(tls.cert_file, tls.key_file)
    new_ca = ca_files is not None and _missing(config, "ca", *ca_files)
    new_server = server_files is not None and _missing(config, "tls", *server_files)
    if new_server and ca_files is None:
        raise ConfigError(
            config.source,
            "tls",
            "cert_file",
            f"{tls.cert_file} does not exist and [ca] cert_file is not set, so there is no CA "
            "of yours to issue it; supply the server certificate, or set [ca] cert_file and "
            "key_file too (nothing was written)",
        )
    if new_ca and cfg.issuing_ca:
        raise ConfigError(
            config.source,
            "ca",
            "issuing_ca",
            "a generated issuing CA keeps no root key to write to [ca] key_file; set "
            "issuing_ca = no, or supply the CA files (nothing was written)",
        )
    written: list[str] = []
    if not (new_ca or new_server):
        return written
    ca = _create_ca(config, written) if new_ca else _load_ca(config)
    if new_server:
        _create_server(config, ca, written)
    return written


def _create_ca(config: Config, written: list[str]) -> CertificateAuthority:
    cfg = config.ca
    assert cfg.cert_file is not None and cfg.key_file is not None  # checked by the caller
    ca = CertificateAuthority.create(
        common_name=cfg.common_name,
        key_type=cfg.key_type,
        validity_days=cfg.validity_days,
        organization=cfg.organization or None,
    )
    _parent(cfg.key_file)
    atomic_write(cfg.key_file, private_key_pem(ca.private_key))
    atomic_write(cfg.cert_file, certificate_pem(ca.certificate), mode=0o644)
    written.append(f"CA {cfg.common_name!r} in {cfg.cert_file} and key {cfg.key_file}")
    return ca


def _load_ca(config: Config) -> CertificateAuthority:
    cfg = config.ca
    assert cfg.cert_file is not None and cfg.key_file is not None  # checked by the caller
    try:
        chain = b"".join(path.read_bytes() for path in cfg.chain_files)
        return CertificateAuthority.from_pem(
            cfg.cert_file.read_bytes(), cfg.key_file.read_bytes(), chain
        )
    except (OSError, ValueError) as exc:
        raise ConfigError(config.source, "ca", "cert_file", f"unusable CA: {exc}") from None


def _create_server(config: Config, ca: CertificateAuthority, written: list[str]) -> None:
    tls = config.tls
    assert tls.cert_file is not None and tls.key_file is not None  # checked by the caller
    dns, ips = default_server_names(config)
    cert, key = ca.issue_server_certificate(
        common_name=dns[1] if len(dns) > 1 else dns[0],
        dns_names=dns,
        ip_addresses=ips,
        key_type=tls.server_key_type,
        validity_days=tls.server_validity_days,
    )
    _parent(tls.key_file)
    atomic_write(tls.key_file, private_key_pem(key))
    atomic_write(tls.cert_file, certificates_pem((cert, *ca.chain)), mode=0o644)
    written.append(f"TLS server certificate {tls.cert_file} and key {tls.key_file}")


def _missing(config: Config, section: str, cert: Path, key: Path) -> bool:
    """True when both files of the pair are absent; False when both exist."""
    if cert.exists() and key.exists():
        return False
    if not cert.exists() and not key.exists():
        return True
    present, absent = (cert, key) if cert.exists() else (key, cert)
    raise ConfigError(
        config.source,
        section,
        "key_file" if absent == key else "cert_file",
        f"{present} exists but {absent} does not; restore it, or remove {present} to create "
        "both (nothing was written)",
    )


def _pair(cert: Path | None, key: Path | None) -> tuple[Path, Path] | None:
    return None if cert is None or key is None else (cert, key)


def _parent(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
