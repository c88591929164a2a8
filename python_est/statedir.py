"""The layout of the state directory (`[server] state_dir`): the one module that names its files.

    ca/ca.pem, ca/ca.key         the CA that issues (the issuing CA when [ca] issuing_ca = yes)
    ca/chain.pem                 the root above an issuing CA (its key is not kept: offline root)
    tls/server.pem, server.key   the TLS server certificate (chain) and key
    tls/ticket.keys              the session-ticket keys every worker shares
    users.srp                    the SRP user store (default of [srp] user_db)
    ledger.sqlite3               the ledger (default of [ledger] path)
    lockouts.sqlite3             the failed-login counters
    crl/ca.crl                   the published CRL (default of [crl] file)
    notify/                      issuance notifications not yet delivered (failed/: given up)
    devices.sqlite3              pre-registered devices and their hashed one-time codes
    keks.json                    key-encryption keys for /serverkeygen (`python-est kek`)
    ocsp/signer.pem, signer.key  the delegated OCSP signer ([ocsp] signer = delegated)

It sits below `config` so that the configuration's defaults and `python_est.state`, which
creates and opens these files, read one layout; nothing else builds a path under the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StateDir:
    """The files of the state directory `root`."""

    root: Path

    @property
    def ca_dir(self) -> Path:
        return self.root / "ca"

    @property
    def ca_cert(self) -> Path:
        return self.ca_dir / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.ca_dir / "ca.key"

    @property
    def ca_chain(self) -> Path:
        return self.ca_dir / "chain.pem"

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    @property
    def server_cert(self) -> Path:
        return self.tls_dir / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.tls_dir / "server.key"

    @property
    def ticket_keys(self) -> Path:
        return self.tls_dir / "ticket.keys"

    @property
    def users(self) -> Path:
        return self.root / "users.srp"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.sqlite3"

    @property
    def lockouts(self) -> Path:
        return self.root / "lockouts.sqlite3"

    @property
    def crl(self) -> Path:
        return self.root / "crl" / "ca.crl"

    @property
    def notify_outbox(self) -> Path:
        return self.root / "notify"

    @property
    def devices(self) -> Path:
        return self.root / "devices.sqlite3"

    @property
    def keks(self) -> Path:
        return self.root / "keks.json"

    @property
    def ocsp_signer_cert(self) -> Path:
        return self.root / "ocsp" / "signer.pem"

    @property
    def ocsp_signer_key(self) -> Path:
        return self.root / "ocsp" / "signer.key"
