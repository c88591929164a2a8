"""Checks that keep state from being created or replaced by mistake, and the messages naming
the next command (issue 15 item 4).
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from python_est.config import Config
from python_est.config.model import EMBEDDED
from python_est.errors import ConfigError, LedgerError, Unavailable
from python_est.ledger import SqliteLedger
from python_est.state.database import open_database
from python_est.statedir import StateDir


def init_command(config: Config) -> str:
    """The `python-est init` command line for this configuration, to quote in messages."""
    config_arg = "" if config.source == EMBEDDED else f" -c {config.source}"
    return f"python-est{config_arg} init"


def ca_command(config: Config, action: str) -> str:
    """The `python-est ca ACTION` command line for this configuration, to quote in messages."""
    config_arg = "" if config.source == EMBEDDED else f" -c {config.source}"
    return f"python-est{config_arg} ca {action}"


def orphaned_ledger_problem(config: Config) -> str:
    """Why a new CA must not be created here ("" when it may): the generated CA's key is gone
    but the ledger holds certificates it issued.

    A new root would silently orphan every issued certificate: devices could no longer renew,
    and revocations would be signed by a key nobody trusts. (A token key stays on its token:
    only its certificate is made again, and `token_key_problem` guards a new token key.)
    """
    layout = StateDir(config.server.state_dir)
    if config.ca.cert_file is not None or layout.ca_key.exists() or config.ca.pkcs11 is not None:
        return ""
    issued = _issued_count(config)
    if not issued:
        return ""
    return (
        f"the CA key {layout.ca_key} is missing but the ledger holds {issued} certificate(s) "
        "it issued; restore ca/ca.key and ca/ca.pem from a backup (a new CA would orphan "
        "them), or move the ledger away to start over with a new CA"
    )


def token_key_problem(config: Config) -> str:
    """Why a new token key (`init --create-token-key`) must not replace the CA here: its
    certificate is gone but the ledger holds certificates the CA issued ("" when it may)."""
    layout = StateDir(config.server.state_dir)
    if layout.ca_cert.exists():
        return ""  # replaced only with --force, which the caller asks for
    issued = _issued_count(config)
    if not issued:
        return ""
    return (
        f"the CA certificate {layout.ca_cert} is missing but the ledger holds {issued} "
        "certificate(s) its CA issued; restore ca/ca.pem and run `init` without "
        "--create-token-key (the key is still on the token), or move the ledger away to start "
        "over with a new CA"
    )


def _issued_count(config: Config) -> int:
    if config.ledger.url:
        from python_est.ledger.postgres import PostgresLedger

        database = open_database(config)
        try:
            return PostgresLedger(database).count()
        finally:
            database.close()
    path = config.ledger.path
    if not path.exists():
        return 0
    try:
        with SqliteLedger(path, read_only=True) as ledger:
            return ledger.count()
    except (LedgerError, Unavailable):
        raise ConfigError(
            config.source, "ledger", "path", f"{path} exists but cannot be read as a ledger"
        ) from None


def missing_server_names(config: Config, cert: x509.Certificate) -> list[str]:
    """The `[server] server_names` entries that `cert` (the TLS server certificate) lacks.

    DNS names compare case-insensitively, and a `*.` wildcard covers one label (RFC 6125 §6.4.3);
    IP addresses compare as addresses.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return list(config.server.server_names)
    dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    ips = set(san.get_values_for_type(x509.IPAddress))
    missing = []
    for name in config.server.server_names:
        try:
            covered = ipaddress.ip_address(name) in ips
        except ValueError:
            lower = name.lower()
            parent = lower.partition(".")[2]
            covered = lower in dns or (bool(parent) and f"*.{parent}" in dns)
        if not covered:
            missing.append(name)
    return missing
