"""Loading and validating the INI file.

Every key is read here and nowhere else; `config/python_est.cfg` documents each one. Any problem
raises `ConfigError` naming file, section and key. Relative paths resolve against the folder of
the config file. Sections of the older tlslite-based python-est / est_proxy (`[DEFAULT]`,
`[Daemon]`, `[ClientAuth]`, `[CAhandler]`, `[SRP]`, `[Bootstrap]`, `[Logging]`) are read as
defaults for the new sections, with a warning for each key that no longer applies (`legacy`).
"""

from __future__ import annotations

import configparser
from dataclasses import replace
from pathlib import Path

from python_est.config.cas import check_label_cas, named_cas
from python_est.config.convert import (
    to_address,
    to_base_url,
    to_bool,
    to_choice,
    to_count,
    to_database_url,
    to_group_bits,
    to_key_type,
    to_list,
    to_networks,
    to_nonempty,
    to_port,
    to_positive_float,
    to_positive_int,
    to_realm,
    to_server_names,
    to_web_path,
)
from python_est.config.keys import (
    NO_NAMES,
)
from python_est.config.labels import check_labels, read_labels
from python_est.config.legacy import bootstrap_path, ca_passphrase, check_sections, legacy_handler
from python_est.config.model import (
    EMBEDDED,
    HEALTH_PATH,
    AuthConfig,
    BootstrapConfig,
    CaConfig,
    Config,
    CrlConfig,
    LabelConfig,
    LedgerConfig,
    LoggingConfig,
    MetricsConfig,
    ServerConfig,
    SrpConfig,
    legacy_tls_warnings,
)
from python_est.config.ocsp import read_ocsp, with_ocsp_url
from python_est.config.pkcs11 import read_pkcs11_key
from python_est.config.reader import Reader, resolve
from python_est.config.tls import read_tls
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.statedir import StateDir


def load_config(path: Path) -> Config:
    """Load and validate the INI file at `path`.

    Raises:
        ConfigError: the file is missing or unreadable, or a section, key or value is wrong.
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, None, None, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, None, None, f"cannot read: {exc.__class__.__name__}") from None
    # A private default section name keeps `[DEFAULT]` (used by the older product) an ordinary
    # section instead of a set of values inherited by every other section.
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    try:
        parser.read_string(text, source)
    except configparser.Error as exc:
        problem = str(exc).splitlines()[0]
        raise ConfigError(source, None, None, f"not a valid INI file: {problem}") from None
    return _build(Reader(parser, source, path.resolve().parent))


def default_config(base: Path) -> Config:
    """The embedded configuration, with its state directory resolved against `base`."""
    return _build(Reader(configparser.ConfigParser(interpolation=None), EMBEDDED, base))


def _build(reader: Reader) -> Config:
    warnings = check_sections(reader)
    base = reader.base
    legacy_debug = reader.get("DEFAULT", "debug", False, to_bool)
    server = _server(reader, base)
    state = StateDir(server.state_dir)
    ca, ca_warnings = _ca(reader, base)
    tls = read_tls(reader, base)
    srp_user_db = reader.path("SRP", "userdb", state.users, base)
    user_db = reader.path("srp", "user_db", srp_user_db, base) or state.users
    srp = SrpConfig(
        enabled=reader.get("srp", "enabled", True, to_bool),
        user_db=user_db,
        group_bits=reader.get("srp", "group_bits", 2048, to_group_bits),
        legacy_user_db=reader.parser.has_option("SRP", "userdb")
        and not reader.parser.has_option("srp", "user_db"),
        min_password_length=reader.get("srp", "min_password_length", 8, to_count),
    )
    legacy_export = reader.path("CAhandler", "cert_save_path", None, base)
    ledger = LedgerConfig(
        path=reader.path("ledger", "path", state.ledger, base) or state.ledger,
        export_dir=reader.path("ledger", "export_dir", legacy_export, base),
        url=reader.get("ledger", "url", "", to_database_url),
        pool_size=reader.get("ledger", "pool_size", 8, to_positive_int),
    )
    auth = AuthConfig(
        realm=reader.get("auth", "realm", "python-est", to_realm),
        max_failures=reader.get("auth", "max_failures", 5, to_positive_int),
        failure_window=reader.get("auth", "failure_window", 300, to_positive_int),
        lockout=reader.get("auth", "lockout", 300, to_positive_int),
        account_max_failures=reader.get("auth", "account_max_failures", 20, to_positive_int),
        address_max_failures=reader.get("auth", "address_max_failures", 30, to_positive_int),
        known_good=reader.get("auth", "known_good", 2592000, to_positive_int),
    )
    page_path, page_warnings = bootstrap_path(reader)
    bootstrap = BootstrapConfig(
        enabled=reader.get(
            "bootstrap", "enabled", reader.get("Bootstrap", "enabled", True, to_bool), to_bool
        ),
        path=page_path,
    )
    logging_cfg = LoggingConfig(
        level=reader.get(
            "logging",
            "level",
            "debug" if legacy_debug else "info",
            to_choice("debug", "info", "warning", "error"),
        ),
        format=reader.get("logging", "format", "plain", to_choice("plain", "json")),
    )
    metrics = _metrics(reader)
    crl = _crl(reader, base, state, bootstrap)
    labels = read_labels(reader)
    label_warnings = check_labels(reader, labels) + legacy_handler(reader)[1]
    cas, named_warnings = named_cas(reader, lambda view: _ca(view, base), crl)
    check_label_cas(reader, labels, cas)
    ca_warnings += named_warnings
    if crl.url is not None:
        # Each label's certificates name the CRL of the CA that signs them.
        labels = {
            name: _with_crl_url(label, crl.for_ca(label.ca).url or crl.url)
            for name, label in labels.items()
        }
    ocsp = read_ocsp(reader, bootstrap, crl)
    if ocsp.url is not None:
        labels = {name: with_ocsp_url(label, ocsp.url) for name, label in labels.items()}
    _check_unused(reader)
    return Config(
        source=reader.source,
        server=server,
        logging=logging_cfg,
        ca=ca,
        tls=tls,
        srp=srp,
        ledger=ledger,
        auth=auth,
        bootstrap=bootstrap,
        metrics=metrics,
        crl=crl,
        labels=labels,
        ocsp=ocsp,
        warnings=tuple(
            warnings + ca_warnings + page_warnings + legacy_tls_warnings(tls) + label_warnings
        ),
        cas=cas,
    )


def _check_unused(reader: Reader) -> None:
    # Every known key must have been consumed by a reader call; a miss here is our bug.
    for section in reader.parser.sections():
        for key in reader.parser.options(section):
            if (section, key) not in reader.used:
                raise reader.error(section, key, "key is not read by this version")


def _server(reader: Reader, base: Path) -> ServerConfig:
    default = ServerConfig()
    # est_proxy's certificate listener was [ClientAuth], later [Daemon]; one port serves both.
    address = reader.get(
        "Daemon",
        "address",
        reader.get("ClientAuth", "address", default.address, to_address),
        to_address,
    )
    port = reader.get(
        "Daemon", "port", reader.get("ClientAuth", "port", default.port, to_port), to_port
    )
    state_dir = reader.path("server", "state_dir", base / "state", base) or base / "state"
    max_connections = reader.get("server", "max_connections", 64, to_positive_int)
    proxy_protocol = reader.get("server", "proxy_protocol", False, to_bool)
    trusted_proxies = reader.get(
        "server", "trusted_proxies", ServerConfig.trusted_proxies, to_networks
    )
    if proxy_protocol and not trusted_proxies:
        # Accepting a header from anyone would let any client pick the address it is counted
        # and logged under; the proxies must be named.
        raise reader.error("server", "trusted_proxies", "must be set when proxy_protocol = yes")
    return ServerConfig(
        address=reader.get("server", "address", address, to_address),
        port=reader.get("server", "port", port, to_port),
        state_dir=state_dir,
        server_names=reader.get("server", "server_names", NO_NAMES, to_server_names),
        max_connections=max_connections,
        # Default: a quarter of the workers, so that holding them all takes four addresses,
        # and then eviction of idle connections still serves others (`python_est.server.table`).
        max_connections_per_address=reader.get(
            "server", "max_connections_per_address", max(1, max_connections // 4), to_count
        ),
        backlog=reader.get("server", "backlog", 128, to_positive_int),
        handshake_timeout=reader.get("server", "handshake_timeout", 10.0, to_positive_float),
        request_timeout=reader.get("server", "request_timeout", 30.0, to_positive_float),
        max_body_bytes=reader.get("server", "max_body_bytes", 65536, to_positive_int),
        pending_retry_after=reader.get("server", "pending_retry_after", 60, to_positive_int),
        workers=reader.get("server", "workers", 1, to_positive_int),
        shutdown_grace=reader.get("server", "shutdown_grace", 30.0, to_positive_float),
        proxy_protocol=proxy_protocol,
        trusted_proxies=trusted_proxies,
        header_timeout=reader.get("server", "header_timeout", 10.0, to_positive_float),
    )


def _ca(reader: Reader, base: Path) -> tuple[CaConfig, list[str]]:
    legacy_cert = reader.path("CAhandler", "issuing_ca_cert", None, base)
    legacy_key = reader.path("CAhandler", "issuing_ca_key", None, base)
    legacy_chain = reader.get("CAhandler", "ca_cert_chain_list", NO_NAMES, to_list)
    chain = reader.get("ca", "chain_files", legacy_chain, to_list)
    passphrase, warnings = ca_passphrase(reader, base)
    cfg = CaConfig(
        common_name=reader.get("ca", "common_name", "python-est Root CA", to_nonempty),
        organization=reader.get("ca", "organization", "", str),
        key_type=reader.get("ca", "key_type", KeyType.RSA_3072, to_key_type),
        validity_days=reader.get("ca", "validity_days", 3650, to_positive_int),
        issuing_ca=reader.get("ca", "issuing_ca", False, to_bool),
        issuing_key_type=reader.get("ca", "issuing_key_type", KeyType.RSA_2048, to_key_type),
        cert_file=reader.path("ca", "cert_file", legacy_cert, base),
        key_file=reader.path("ca", "key_file", legacy_key, base),
        chain_files=tuple(resolve(Path(item), base) for item in chain),
        key_passphrase=passphrase,
        expiry_warning_days=reader.get("ca", "expiry_warning_days", 30, to_count),
        pkcs11=read_pkcs11_key(reader, base, "ca"),
    )
    if cfg.pkcs11 is not None:
        # The key is on the token; the certificate is cert_file or the one `init` generated.
        if cfg.key_file is not None:
            raise reader.error("ca", "key_file", "give key_file or pkcs11_key_label, not both")
        return cfg, warnings
    if (cfg.cert_file is None) != (cfg.key_file is None):
        key = "cert_file" if cfg.cert_file is None else "key_file"
        raise reader.error("ca", key, "cert_file and key_file must be given together")
    return cfg, warnings


def _metrics(reader: Reader) -> MetricsConfig:
    d = MetricsConfig()
    return MetricsConfig(
        enabled=reader.get("metrics", "enabled", d.enabled, to_bool),
        address=reader.get("metrics", "address", d.address, to_address),
        port=reader.get("metrics", "port", d.port, to_port),
    )


def _crl(reader: Reader, base: Path, state: StateDir, bootstrap: BootstrapConfig) -> CrlConfig:
    default_file = state.crl
    cfg = CrlConfig(
        enabled=reader.get("crl", "enabled", True, to_bool),
        path=reader.get("crl", "path", CrlConfig.path, to_web_path),
        file=reader.path("crl", "file", default_file, base) or default_file,
        validity_hours=reader.get("crl", "validity_hours", 168, to_positive_int),
        base_url=reader.get("crl", "base_url", "", to_base_url),
    )
    if cfg.path in {"/", HEALTH_PATH, bootstrap.path}:
        raise reader.error("crl", "path", f"{cfg.path} is taken by another resource")
    return cfg


def _with_crl_url(label: LabelConfig, url: str) -> LabelConfig:
    return replace(label, profile=replace(label.profile, crl_urls=(url,)))
