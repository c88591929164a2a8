"""A CA whose key is on a PKCS#11 token (`pkcs11_*` in `[ca]` or a `[ca:NAME]`): open the key,
load or make its CA.

The certificate is the section's `cert_file` (with `chain_files`), or the one python-est made
for the token key under the state directory (`init` for `[ca]`, `ca create NAME` for a
`[ca:NAME]`). A key is created on the token only when asked for (`init --create-token-key`,
`ca create NAME`), and never over an existing label.
"""

from __future__ import annotations

from pathlib import Path

from python_est.ca import CertificateAuthority
from python_est.ca.pkcs11 import TokenError, TokenKey, open_token_key
from python_est.config import CaConfig, Config
from python_est.config.keys import CA_PREFIX
from python_est.config.model import DEFAULT_CA
from python_est.config.passphrase import read_passphrase
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.state.guards import ca_command, init_command
from python_est.statedir import StateDir

_FIELD_KEYS = {
    "module": "pkcs11_module",
    "token": "pkcs11_token",
    "pin": "pkcs11_pin",
    "key": "pkcs11_key_label",
}


def signing_key_type(cfg: Config | CaConfig) -> KeyType:
    """The type of the key that signs issued certificates (the issuing CA's with one)."""
    ca = cfg.ca if isinstance(cfg, Config) else cfg
    return ca.issuing_key_type if ca.issuing_ca else ca.key_type


def section_of(name: str) -> str:
    """The config section of the CA `name`: `ca`, or `ca:NAME`."""
    return "ca" if name == DEFAULT_CA else CA_PREFIX + name


def open_ca_token_key(config: Config, name: str = DEFAULT_CA, *, create: bool = False) -> TokenKey:
    """Log in and find the `pkcs11_key_label` of the CA `name`, or create it (of
    `signing_key_type`).

    Raises:
        ConfigError: one line naming the config file, the CA's section and the `pkcs11_*` key
            at fault.
    """
    section = section_of(name)
    cfg = config.ca_config(name)
    token = cfg.pkcs11
    if token is None:
        raise ConfigError(config.source, section, "pkcs11_key_label", "no token key is configured")
    pin = read_passphrase(token.pin, config.source)
    try:
        return open_token_key(
            token.module,
            token.token,
            token.key_label,
            pin,
            create=signing_key_type(cfg) if create else None,
        )
    except TokenError as exc:
        problem = str(exc)
        if exc.missing_key:
            command = (
                f"{init_command(config)} --create-token-key"
                if name == DEFAULT_CA
                else ca_command(config, f"create {name}")
            )
            problem += f"; create it with `{command}`"
        raise ConfigError(config.source, section, _FIELD_KEYS[exc.field], problem) from None


def load_token_ca(config: Config, name: str = DEFAULT_CA) -> CertificateAuthority | None:
    """The CA `name` of the token key with its certificate; None when that certificate is not
    made yet.

    Raises:
        ConfigError: the token, the key or the certificate files are unusable.
    """
    section = section_of(name)
    cfg = config.ca_config(name)
    layout = StateDir(config.server.state_dir)
    files = layout.ca_files(name)
    if cfg.cert_file is not None:
        where, key = section, "cert_file"
        cert_pem = _read(config, where, key, cfg.cert_file)
        chain_pem = b"".join(_read(config, section, "chain_files", p) for p in cfg.chain_files)
    elif files.cert.exists():
        where, key = "server", "state_dir"
        cert_pem = _read(config, where, key, files.cert)
        chain_pem = _read(config, where, key, files.chain) if files.chain.exists() else b""
    else:
        return None
    token_key = open_ca_token_key(config, name)
    try:
        return CertificateAuthority.with_external_key(cert_pem, token_key, chain_pem)
    except ValueError as exc:
        token_key.close()
        raise ConfigError(config.source, where, key, f"unusable CA: {exc}") from None


def _read(config: Config, section: str, key: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror}"
        raise ConfigError(config.source, section, key, problem) from None
