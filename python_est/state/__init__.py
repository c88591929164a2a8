"""The state directory: created on first start, loaded on every start and reload.

The layout (`python_est.statedir`) is all under `[server] state_dir`, mode 0700; key files 0600.
Callers ask this module for paths in it (`lockouts_path`, `ticket_keys_path`, ...).

With `[ledger] url` (PostgreSQL) the ledger, the users, the failure counters and the TLS
session-ticket keys live in that database instead, shared by every instance (docs/scale-out.md).

Configured files (`[ca] cert_file`, `[tls] cert_file`, ...) are used instead of generated ones.
Problems with files the operator named are `ConfigError`s naming the key. `guards` holds the
checks that stop state from being created or replaced by mistake; `database` opens PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509

from python_est.ca import (
    CertificateAuthority,
    certificate_pem,
    certificates_pem,
    private_key_pem,
)
from python_est.ca.rollover import RootRollover
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.errors import ConfigError, LedgerError, Unavailable
from python_est.fileio import atomic_write, ensure_private_dir
from python_est.keys import generate_private_key
from python_est.ledger import SqliteLedger
from python_est.state.cafiles import ca_from_pem as _ca_from_pem
from python_est.state.cafiles import client_trust_anchors as _client_trust_anchors
from python_est.state.cafiles import configured_ca, load_named_ca
from python_est.state.cafiles import read_file as _read
from python_est.state.database import open_database
from python_est.state.guards import init_command, orphaned_ledger_problem
from python_est.state.rollover import generation, load_rollover, load_rollovers
from python_est.state.server_tls import ServerCredentials, load_or_create_server
from python_est.state.token_ca import load_token_ca, open_ca_token_key, signing_key_type
from python_est.state.users import legacy_users, open_users
from python_est.state.users import user_store_path as user_store_path
from python_est.statedir import StateDir
from python_est.users import UserDirectory

if TYPE_CHECKING:
    from python_est.ledger.postgres import PostgresLedger
    from python_est.pgsql import Database


@dataclass
class State:
    """Everything loaded from disk that the server runs on; it owns the open ledger and database.

    `close()` (or leaving a `with` block) closes them; a process that forks closes its state
    first, because a SQLite or PostgreSQL connection must never cross a fork.
    """

    ca: CertificateAuthority
    server: ServerCredentials
    client_trust_anchors: tuple[x509.Certificate, ...]
    ledger: SqliteLedger | PostgresLedger
    users: UserDirectory | None
    created: list[str] = field(default_factory=list)
    database: Database | None = None  # with [ledger] url: shared by ledger, users and limits
    # Every configured CA by name (`ca` as DEFAULT_CA, then each `[ca:NAME]`); empty: only `ca`.
    cas: Mapping[str, CertificateAuthority] = field(default_factory=dict)

    # Root rollovers in progress by CA name (the new root is the CA in `cas`), and each CA's
    # root key generation (1 until its first finished rollover).
    rollovers: Mapping[str, RootRollover] = field(default_factory=dict)
    generations: Mapping[str, int] = field(default_factory=dict)

    def ca_named(self, name: str) -> CertificateAuthority:
        """The CA `name` (a name the configuration checked)."""
        return self.ca if name == DEFAULT_CA else self.cas[name]

    def close(self) -> None:
        """Close the ledger and the database connections (a closed SQLite ledger refuses work;
        a database connects again when used), and the CA tokens' sessions."""
        self.ca.close()
        for ca in self.cas.values():
            if ca is not self.ca:
                ca.close()  # a [ca:NAME] key on a token holds its own session
        self.ledger.close()
        if self.database is not None:
            self.database.close()

    def __enter__(self) -> State:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_first_start(config: Config) -> bool:
    """True when none of the state files exist yet, so that `serve` may create all of them.

    Once any exists, a missing piece is an error rather than a silent fresh start: a new empty
    user store locks every device out, and a new empty ledger forgets every revocation.
    """
    layout = StateDir(config.server.state_dir)
    paths = [layout.ca_cert, layout.server_cert]
    if not config.ledger.url:
        paths.append(config.ledger.path)
        if config.srp.enabled:
            paths.append(user_store_path(config))
    return not any(path.exists() for path in paths)


def open_state(
    config: Config, *, create: bool = True, ledger: SqliteLedger | PostgresLedger | None = None
) -> State:
    """Load the state, creating what is missing when `create` is true.

    Args:
        config: the configuration.
        create: create what is missing (first start, `init`).
        ledger: the open ledger of a running state of the same `[ledger]`, which the new state
            takes over instead of opening another connection (a reload).

    Raises:
        ConfigError: a configured file is missing or unusable, or state is missing and
            `create` is false.
    """
    created: list[str] = []
    state_dir = config.server.state_dir
    if not create and is_first_start(config):
        # Admin commands run from the wrong folder or without -c land here: say so rather than
        # create a throwaway CA and user store that the running server never reads.
        raise ConfigError(
            config.source,
            "server",
            "state_dir",
            f"no python-est state in {state_dir}; check -c, or create it with "
            f"`{init_command(config)}`",
        )
    # Read before anything is created, so that an unreadable one leaves no half-made state.
    legacy = legacy_users(config) if create else None
    if create:
        try:
            ensure_private_dir(state_dir)
        except OSError as exc:
            raise ConfigError(
                config.source, "server", "state_dir", f"cannot create {state_dir}: {exc.strerror}"
            ) from None
    # The `[ca:NAME]` CAs first: they are never created here, so a missing one stops start-up
    # before anything else is made.
    rollovers = load_rollovers(config)
    named = {
        name: rollovers[name].new if name in rollovers else load_named_ca(config, name)
        for name in config.cas
    }
    # During a rollover the new root issues (RFC 7030 §4.1.3); the old one is in `rollovers`.
    default = rollovers.get(DEFAULT_CA)
    ca = default.new if default else _load_or_create_ca(config, create, created)
    cas = {DEFAULT_CA: ca, **named}
    server = load_or_create_server(config, ca, create, created)
    anchors = _client_trust_anchors(config, cas, rollovers)
    database = open_database(config) if config.ledger.url else None
    if database is not None:
        from python_est.ledger.postgres import PostgresLedger
        from python_est.users.database import DatabaseUserStore

        if ledger is None:
            ledger = PostgresLedger(database, export_dir=config.ledger.export_dir)
        users: UserDirectory | None = DatabaseUserStore(database) if config.srp.enabled else None
    else:
        ledger = _open_ledger(config, create, created, ledger)
        users = open_users(config, create, created, legacy) if config.srp.enabled else None
    return State(
        ca=ca,
        server=server,
        client_trust_anchors=anchors,
        ledger=ledger,
        users=users,
        created=created,
        database=database,
        cas=cas,
        rollovers=rollovers,
        generations={name: generation(config, name) for name in config.ca_names},
    )


def load_ca(config: Config, name: str) -> CertificateAuthority:
    """The CA `name` alone, without the rest of the state (`python-est ca list`).

    Raises:
        ConfigError: it does not exist yet, or its files are unusable.
    """
    rollover = load_rollover(config, name) if config.ca_config(name).cert_file is None else None
    if rollover is not None:
        return rollover.new
    if name == DEFAULT_CA:
        return _load_or_create_ca(config, False, [])
    return load_named_ca(config, name)


def lockouts_path(config: Config) -> Path:
    """The SQLite file of the failure counters, next to the ledger in the state directory."""
    return StateDir(config.server.state_dir).lockouts


def ticket_keys_path(config: Config) -> Path:
    """The session-ticket key file every serving process of this state directory shares."""
    return StateDir(config.server.state_dir).ticket_keys


def has_ca_or_server_certificate(config: Config) -> bool:
    """Whether the state directory holds a generated CA or server certificate already."""
    layout = StateDir(config.server.state_dir)
    return layout.ca_cert.exists() or layout.server_cert.exists()


def create_ca(config: Config, *, new_token_key: bool = False) -> CertificateAuthority:
    """Generate the CA described by `[ca]` and write it under the state directory.

    With `[ca] pkcs11_*` its key is the token key (created there with `new_token_key`, which
    refuses an existing label) and only the certificates are written.
    """
    cfg = config.ca
    token_key = None
    file_key = None
    if cfg.pkcs11 is not None:
        token_key = open_ca_token_key(config, create=new_token_key)
    else:
        file_key = generate_private_key(signing_key_type(config))
    ca = CertificateAuthority.create(
        common_name=cfg.common_name,
        key_type=cfg.key_type,
        validity_days=cfg.validity_days,
        issuing_ca=cfg.issuing_ca,
        issuing_key_type=cfg.issuing_key_type,
        organization=cfg.organization or None,
        key=token_key or file_key,
    )
    layout = StateDir(config.server.state_dir)
    ensure_private_dir(layout.ca_dir)
    if file_key is not None:
        atomic_write(layout.ca_key, private_key_pem(file_key))
    atomic_write(layout.ca_cert, certificate_pem(ca.certificate), mode=0o644)
    if len(ca.chain) > 1:
        chain_pem = certificates_pem(ca.chain[1:])
        atomic_write(layout.ca_chain, chain_pem, mode=0o644)
    return ca


def _load_or_create_ca(config: Config, create: bool, created: list[str]) -> CertificateAuthority:
    cfg = config.ca
    if cfg.pkcs11 is not None:
        ca = load_token_ca(config)
        if ca is not None:
            return ca
        if not create:
            raise ConfigError(
                config.source, "server", "state_dir", f"no CA yet; run `{init_command(config)}`"
            )
        created.append(f"CA {cfg.common_name!r} for {cfg.pkcs11.key_label!r} on the token")
        return create_ca(config)
    if cfg.cert_file is not None and cfg.key_file is not None:
        return configured_ca(config, "ca", cfg)
    layout = StateDir(config.server.state_dir)
    if layout.ca_cert.exists():
        if not layout.ca_key.exists():
            raise ConfigError(
                config.source,
                "server",
                "state_dir",
                f"the CA key {layout.ca_key} is missing; restore it from a backup",
            )
        chain_file = layout.ca_chain
        chain_pem = _read(config, "server", "state_dir", chain_file) if chain_file.exists() else b""
        return _ca_from_pem(
            config,
            None,
            _read(config, "server", "state_dir", layout.ca_cert),
            _read(config, "server", "state_dir", layout.ca_key),
            chain_pem,
        )
    if layout.ca_key.exists():
        raise ConfigError(
            config.source,
            "server",
            "state_dir",
            f"the CA key {layout.ca_key} is there but its certificate {layout.ca_cert} is "
            "missing; restore ca/ca.pem from a backup",
        )
    if not create:
        raise ConfigError(
            config.source, "server", "state_dir", f"no CA yet; run `{init_command(config)}`"
        )
    problem = orphaned_ledger_problem(config)
    if problem:
        raise ConfigError(config.source, "server", "state_dir", problem)
    created.append(f"CA {cfg.common_name!r} ({cfg.key_type.value}) in {layout.ca_dir}")
    return create_ca(config)


def _open_ledger(
    config: Config,
    create: bool,
    created: list[str],
    running: SqliteLedger | PostgresLedger | None,
) -> SqliteLedger | PostgresLedger:
    path = config.ledger.path
    if not path.exists():
        if not create:
            raise ConfigError(
                config.source,
                "ledger",
                "path",
                f"{path} does not exist (`python-est init` creates an empty one)",
            )
        created.append(f"ledger {path}")
    if running is not None:
        return running
    try:
        return SqliteLedger(path, export_dir=config.ledger.export_dir)
    except (LedgerError, Unavailable, OSError) as exc:
        raise ConfigError(config.source, "ledger", "path", f"cannot open {path}: {exc}") from None
