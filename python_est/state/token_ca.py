"""A CA whose key is on a PKCS#11 token (`[ca] pkcs11_*`): open the key, load or make its CA.

The certificate is `[ca] cert_file` (with `chain_files`), or the one `python-est init` made for
the token key under the state directory. A key is created on the token only when asked for
(`init --create-token-key`), and never over an existing label.
"""

from __future__ import annotations

from pathlib import Path

from python_est.ca import CertificateAuthority
from python_est.ca.pkcs11 import TokenError, TokenKey, open_token_key
from python_est.config import Config
from python_est.config.passphrase import read_passphrase
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.state.guards import init_command
from python_est.statedir import StateDir

_FIELD_KEYS = {
    "module": "pkcs11_module",
    "token": "pkcs11_token",
    "pin": "pkcs11_pin",
    "key": "pkcs11_key_label",
}


def signing_key_type(config: Config) -> KeyType:
    """The type of the key that signs issued certificates (the issuing CA's with one)."""
    return config.ca.issuing_key_type if config.ca.issuing_ca else config.ca.key_type


def open_ca_token_key(config: Config, *, create: bool = False) -> TokenKey:
    """Log in and find `[ca] pkcs11_key_label`, or create it (of `signing_key_type`).

    Raises:
        ConfigError: one line naming the config file and the `pkcs11_*` key at fault.
    """
    cfg = config.ca.pkcs11
    if cfg is None:
        raise ConfigError(config.source, "ca", "pkcs11_key_label", "no token key is configured")
    pin = read_passphrase(cfg.pin, config.source)
    try:
        return open_token_key(
            cfg.module,
            cfg.token,
            cfg.key_label,
            pin,
            create=signing_key_type(config) if create else None,
        )
    except TokenError as exc:
        problem = str(exc)
        if exc.missing_key:
            problem += f"; create it with `{init_command(config)} --create-token-key`"
        raise ConfigError(config.source, "ca", _FIELD_KEYS[exc.field], problem) from None


def load_token_ca(config: Config) -> CertificateAuthority | None:
    """The CA of the token key with its certificate; None when that certificate is not made yet.

    Raises:
        ConfigError: the token, the key or the certificate files are unusable.
    """
    cfg = config.ca
    layout = StateDir(config.server.state_dir)
    if cfg.cert_file is not None:
        section, name = "ca", "cert_file"
        cert_pem = _read(config, section, name, cfg.cert_file)
        chain_pem = b"".join(_read(config, "ca", "chain_files", p) for p in cfg.chain_files)
    elif layout.ca_cert.exists():
        section, name = "server", "state_dir"
        cert_pem = _read(config, section, name, layout.ca_cert)
        chain = layout.ca_chain
        chain_pem = _read(config, section, name, chain) if chain.exists() else b""
    else:
        return None
    key = open_ca_token_key(config)
    try:
        return CertificateAuthority.with_external_key(cert_pem, key, chain_pem)
    except ValueError as exc:
        key.close()
        raise ConfigError(config.source, section, name, f"unusable CA: {exc}") from None


def _read(config: Config, section: str, key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror}"
        raise ConfigError(config.source, section, key, problem) from None
