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
    cas/NAME/ca.pem, ca.key      a generated `[ca:NAME]` CA (`python-est ca create NAME`),
    cas/NAME/chain.pem           laid out as ca/ is
    ca/rollover/, ca/generation  a root rollover in progress, the root's key generation
    ca/retired/gN/               a root retired by `ca rollover --finish` (and so in cas/NAME/)

It sits below `config` so that the configuration's defaults and `python_est.state`, which
creates and opens these files, read one layout; nothing else builds a path under the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The name of the `[ca]` CA, whose files are ca/; each `[ca:NAME]` CA is NAME, in cas/NAME/.
# The ledger records it for every certificate that CA issued (and for rows from before CAs
# had names).
DEFAULT_CA = "default"


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

    def ca_files(self, name: str) -> CaFiles:
        """The files of the generated CA `name`: ca/ for DEFAULT_CA, else cas/NAME/."""
        if name == DEFAULT_CA:
            return CaFiles(self.ca_dir, self.ca_cert, self.ca_key, self.ca_chain)
        return self.named_ca(name)

    def named_ca(self, name: str) -> CaFiles:
        """The files of the generated `[ca:NAME]` CA `name` (a name checked by the config)."""
        folder = self.root / "cas" / name
        return CaFiles(folder, folder / "ca.pem", folder / "ca.key", folder / "chain.pem")


@dataclass(frozen=True)
class CaFiles:
    """Where one generated CA lives: its folder, certificate, key and the chain above it."""

    folder: Path
    cert: Path
    key: Path
    chain: Path

    @property
    def rollover(self) -> Path:
        """A root rollover in progress (`python-est ca rollover`): old.pem, old.key, new.pem,
        new.key, and links.pem, written last, whose presence marks the rollover."""
        return self.folder / "rollover"

    @property
    def generation(self) -> Path:
        """The number of the root's key generation (absent: 1), raised by each rollover."""
        return self.folder / "generation"

    def retired(self, generation: int) -> Path:
        """Where `ca rollover --finish` keeps the root of `generation` it retired."""
        return self.folder / "retired" / f"g{generation}"
