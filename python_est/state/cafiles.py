"""CA material on disk: the files a CA section names, and the generated `[ca:NAME]` CAs.

The `[ca]` CA is created on first start (`python_est.state`); a `[ca:NAME]` CA never is: it is
generated only by `python-est ca create NAME` (`create_named_ca`), which says what it wrote and
refuses to replace anything, or it comes from the PEM files its section names. A label naming a
CA that does not exist yet stops start-up with the command to run.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography import x509

from python_est.ca import (
    CertificateAuthority,
    certificate_pem,
    certificates_pem,
    load_pem_certificates,
    private_key_pem,
)
from python_est.ca.rollover import RootRollover
from python_est.config import CaConfig, Config
from python_est.config.keys import CA_PREFIX
from python_est.config.model import DEFAULT_CA
from python_est.config.passphrase import read_passphrase
from python_est.errors import ConfigError
from python_est.fileio import atomic_write, ensure_private_dir
from python_est.state.guards import ca_command
from python_est.state.token_ca import load_token_ca, open_ca_token_key
from python_est.statedir import StateDir


def read_file(config: Config, section: str, key: str, path: Path) -> bytes:
    """The bytes of `path`; a missing or unreadable file is a `ConfigError` naming the key."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(config.source, section, key, f"{path} does not exist") from None
    except OSError as exc:
        raise ConfigError(
            config.source, section, key, f"cannot read {path}: {exc.strerror}"
        ) from None


def ca_from_pem(
    config: Config,
    key: str | None,
    cert_pem: bytes,
    key_pem: bytes,
    chain_pem: bytes,
    password: bytes | None = None,
    *,
    section: str = "ca",
) -> CertificateAuthority:
    """The CA in these PEM bytes; unusable material is a `ConfigError` naming `section` `key`
    (or `[server] state_dir` when `key` is None: generated files)."""
    try:
        return CertificateAuthority.from_pem(cert_pem, key_pem, chain_pem, password)
    except ValueError as exc:
        where, name = (section, key) if key else ("server", "state_dir")
        raise ConfigError(config.source, where, name, f"unusable CA: {exc}") from None


def configured_ca(config: Config, section: str, cfg: CaConfig) -> CertificateAuthority:
    """The CA of the files `cfg` names (`cert_file` and `key_file` both set) in `[section]`."""
    assert cfg.cert_file is not None and cfg.key_file is not None
    chain_pem = b"".join(read_file(config, section, "chain_files", p) for p in cfg.chain_files)
    cert_pem = read_file(config, section, "cert_file", cfg.cert_file)
    key_pem = read_file(config, section, "key_file", cfg.key_file)
    password = None
    if cfg.key_passphrase is not None:
        password = read_passphrase(cfg.key_passphrase, config.source)
    return ca_from_pem(config, "cert_file", cert_pem, key_pem, chain_pem, password, section=section)


def key_location(config: Config, name: str) -> str:
    """Where the key of the CA `name` is, for operators (`python-est ca show`)."""
    cfg = config.ca_config(name)
    if cfg.pkcs11 is not None:
        token = cfg.pkcs11
        return f"PKCS#11 pkcs11:token={token.token};object={token.key_label} ({token.module})"
    if cfg.key_file is not None:
        return f"file {cfg.key_file}"
    layout = StateDir(config.server.state_dir)
    key = layout.ca_key if name == DEFAULT_CA else layout.named_ca(name).key
    return f"file {key} (generated)"


def load_named_ca(config: Config, name: str) -> CertificateAuthority:
    """The `[ca:NAME]` CA `name` (a configured name): its files, or its generated folder.

    Raises:
        ConfigError: it has not been created, or its files are unusable.
    """
    section = CA_PREFIX + name
    cfg = config.cas[name]
    if cfg.pkcs11 is not None:
        # The key on the token, never a file: a key file left in the folder is not read.
        token_ca = load_token_ca(config, name)
        if token_ca is not None:
            return token_ca
    elif cfg.cert_file is not None and cfg.key_file is not None:
        return configured_ca(config, section, cfg)
    files = StateDir(config.server.state_dir).named_ca(name)
    if not files.cert.exists():
        raise ConfigError(
            config.source,
            section,
            None,
            f"the CA {name!r} does not exist yet; create it with "
            f"`{ca_command(config, 'create ' + name)}` or name its "
            + ("cert_file" if cfg.pkcs11 is not None else "cert_file and key_file"),
        )
    assert cfg.pkcs11 is None  # load_token_ca found the certificate
    if not files.key.exists():
        raise ConfigError(
            config.source,
            section,
            None,
            f"the CA key {files.key} is missing; restore it from a backup",
        )
    layout = ("server", "state_dir")
    chain = read_file(config, *layout, files.chain) if files.chain.exists() else b""
    return ca_from_pem(
        config,
        None,
        read_file(config, *layout, files.cert),
        read_file(config, *layout, files.key),
        chain,
    )


def create_named_ca(config: Config, name: str) -> tuple[CertificateAuthority, Path]:
    """Generate the `[ca:NAME]` CA `name` under the state directory; returns it and its folder.

    With `pkcs11_*` in the section the key is created on the token (refused when a key of
    that label exists) and only the certificates are written.

    Raises:
        ConfigError: no such `[ca:NAME]`, it names existing files, or it exists already (a new
            key would orphan every certificate the old one issued).
    """
    section = CA_PREFIX + name
    cfg = config.cas.get(name)
    if cfg is None:
        known = ", ".join(config.cas) or "none"
        raise ConfigError(config.source, None, None, f"no [ca:{name}] section (named CAs: {known})")
    if cfg.cert_file is not None:
        raise ConfigError(
            config.source, section, "cert_file", "this CA is given as files; nothing to create"
        )
    files = StateDir(config.server.state_dir).named_ca(name)
    if files.cert.exists() or files.key.exists():
        raise ConfigError(
            config.source,
            section,
            None,
            f"the CA {name!r} already exists in {files.folder}; it is never replaced",
        )
    token_key = open_ca_token_key(config, name, create=True) if cfg.pkcs11 is not None else None
    ca = CertificateAuthority.create(
        common_name=cfg.common_name,
        key_type=cfg.key_type,
        validity_days=cfg.validity_days,
        issuing_ca=cfg.issuing_ca,
        issuing_key_type=cfg.issuing_key_type,
        organization=cfg.organization or None,
        key=token_key,
    )
    ensure_private_dir(config.server.state_dir)
    ensure_private_dir(files.folder.parent)
    ensure_private_dir(files.folder)
    if token_key is None:
        atomic_write(files.key, private_key_pem(ca.private_key))
    if len(ca.chain) > 1:
        atomic_write(files.chain, certificates_pem(ca.chain[1:]), mode=0o644)
    # The certificate last: its presence is what marks the CA as existing.
    atomic_write(files.cert, certificate_pem(ca.certificate), mode=0o644)
    return ca, files.folder


def client_trust_anchors(
    config: Config,
    cas: Mapping[str, CertificateAuthority],
    rollovers: Mapping[str, RootRollover],
) -> tuple[x509.Certificate, ...]:
    """`[tls] client_trust_anchors`, or else every CA's root (old roots of rollovers too).

    Raises:
        ConfigError: a listed file is unreadable or holds no certificate.
    """
    if not config.tls.client_trust_anchors:
        # Every CA's root, and an old root while it is rolled over (its certificates renew);
        # each label then accepts only its own CA's (`python_est.app`).
        roots = [ca.root for ca in cas.values()] + [r.old.root for r in rollovers.values()]
        return tuple(dict.fromkeys(roots))
    anchors: list[x509.Certificate] = []
    for path in config.tls.client_trust_anchors:
        certs = load_pem_certificates(read_file(config, "tls", "client_trust_anchors", path))
        if not certs:
            raise ConfigError(
                config.source, "tls", "client_trust_anchors", f"no certificate in {path}"
            )
        anchors.extend(certs)
    return tuple(anchors)
