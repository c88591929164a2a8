"""The TLS server's certificate chain and key: the configured files, the generated ones in the
state directory, or a new certificate issued by the CA on first start.
"""

from __future__ import annotations

import ipaddress
import platform
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from python_est.ca import (
    CertificateAuthority,
    certificates_pem,
    load_pem_certificates,
    private_key_pem,
)
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.fileio import atomic_write, ensure_private_dir
from python_est.state.cafiles import read_file as _read
from python_est.state.guards import init_command
from python_est.statedir import StateDir


@dataclass(frozen=True)
class ServerCredentials:
    """The TLS server certificate chain (leaf first) and its private key."""

    chain: tuple[x509.Certificate, ...]
    private_key: PrivateKeyTypes


def default_server_names(
    config: Config,
) -> tuple[list[str], list[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    """DNS names and IPs for a generated server certificate: localhost, 127.0.0.1, host, extras."""
    dns = ["localhost"]
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [ipaddress.ip_address("127.0.0.1")]
    host = platform.node()
    candidates = [host, *config.server.server_names] if host else list(config.server.server_names)
    for name in candidates:
        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            if name.lower() not in dns:
                dns.append(name.lower())
        else:
            if ip not in ips:
                ips.append(ip)
    if config.server.address not in {"0.0.0.0", "::", "localhost"}:
        ip = ipaddress.ip_address(config.server.address)
        if ip not in ips:
            ips.append(ip)
    return dns, ips


def create_server_credentials(config: Config, ca: CertificateAuthority) -> ServerCredentials:
    """Issue a TLS server certificate from `ca` and write it under the state directory."""
    dns, ips = default_server_names(config)
    cert, key = ca.issue_server_certificate(
        common_name=dns[1] if len(dns) > 1 else dns[0],
        dns_names=dns,
        ip_addresses=ips,
        key_type=config.tls.server_key_type,
        validity_days=config.tls.server_validity_days,
    )
    layout = StateDir(config.server.state_dir)
    ensure_private_dir(layout.tls_dir)
    chain = (cert, *ca.chain)
    atomic_write(layout.server_key, private_key_pem(key))
    atomic_write(layout.server_cert, certificates_pem(chain), mode=0o644)
    return ServerCredentials(chain=chain, private_key=key)


def load_or_create_server(
    config: Config, ca: CertificateAuthority, create: bool, created: list[str]
) -> ServerCredentials:
    """The configured `[tls]` pair, else the state directory's; with `create`, a new one issued
    by `ca` when there is none (each creation is appended to `created`).

    Raises:
        ConfigError: the files cannot be used, or there are none and `create` is False.
    """
    cfg = config.tls
    if cfg.cert_file is not None and cfg.key_file is not None:
        return _server_from_files(config, "cert_file", cfg.cert_file, cfg.key_file)
    layout = StateDir(config.server.state_dir)
    if layout.server_cert.exists():
        return _server_from_files(config, None, layout.server_cert, layout.server_key)
    if not create:
        raise ConfigError(
            config.source,
            "server",
            "state_dir",
            f"no server certificate in {layout.tls_dir}; run `{init_command(config)}`",
        )
    created.append(f"TLS server certificate in {layout.tls_dir}")
    return create_server_credentials(config, ca)


def _server_from_files(
    config: Config, key: str | None, cert_path: Path, key_path: Path
) -> ServerCredentials:
    section = "tls" if key else "server"
    name = key or "state_dir"
    certs = load_pem_certificates(_read(config, section, name, cert_path))
    if not certs:
        raise ConfigError(config.source, section, name, f"no certificate in {cert_path}")
    key_name = "key_file" if key else "state_dir"
    try:
        private_key = serialization.load_pem_private_key(
            _read(config, section, key_name, key_path), password=None
        )
    except (ValueError, TypeError):
        raise ConfigError(
            config.source, section, key_name, f"no usable private key in {key_path}"
        ) from None
    if private_key.public_key() != certs[0].public_key():
        raise ConfigError(config.source, section, key_name, "key does not match the certificate")
    return ServerCredentials(chain=tuple(certs), private_key=private_key)
