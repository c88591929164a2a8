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

from python_est.config.backend import check_backend
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
    to_names,
    to_networks,
    to_nonempty,
    to_port,
    to_positive_float,
    to_positive_int,
    to_realm,
    to_server_names,
    to_version,
    to_web_path,
)
from python_est.config.idevid import parse_template
from python_est.config.keys import (
    LABEL_KEYS,
    LABEL_PATH_KEYS,
    LABEL_PATH_LIST_KEYS,
    LABEL_PREFIX,
    LABEL_SECRET_KEYS,
    NO_NAMES,
    PROFILE_FIELD,
    PROFILE_KEYS,
)
from python_est.config.legacy import bootstrap_path, ca_passphrase, check_sections, legacy_handler
from python_est.config.model import (
    CIPHER_NAMES,
    EMBEDDED,
    FORBIDDEN_KEY_EXCHANGES,
    HEALTH_PATH,
    KEY_EXCHANGE_NAMES,
    MAC_NAMES,
    TLS_VERSIONS,
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
    TlsConfig,
    legacy_tls_warnings,
    weak_tls_settings,
)
from python_est.config.ocsp import read_ocsp, with_ocsp_url
from python_est.config.passphrase import to_passphrase
from python_est.config.pkcs11 import read_pkcs11_key
from python_est.config.reader import Reader, resolve
from python_est.errors import ConfigError
from python_est.keys import KeyType
from python_est.oids import ID_KP_CMC_RA
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
    tls = _tls(reader, base)
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
    labels = _labels(reader)
    label_warnings = _check_labels(reader, labels) + legacy_handler(reader)[1]
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


def _tls(reader: Reader, base: Path) -> TlsConfig:
    d = TlsConfig()
    cert = reader.path(
        "Daemon", "cert_file", reader.path("ClientAuth", "cert_file", None, base), base
    )
    key = reader.path("Daemon", "key_file", reader.path("ClientAuth", "key_file", None, base), base)
    anchors = reader.get("tls", "client_trust_anchors", NO_NAMES, to_list)
    cfg = TlsConfig(
        cert_file=reader.path("tls", "cert_file", cert, base),
        key_file=reader.path("tls", "key_file", key, base),
        server_key_type=reader.get("tls", "server_key_type", d.server_key_type, to_key_type),
        server_validity_days=reader.get("tls", "server_validity_days", 825, to_positive_int),
        min_version=reader.get("tls", "min_version", d.min_version, to_version),
        max_version=reader.get("tls", "max_version", d.max_version, to_version),
        cipher_names=reader.get("tls", "cipher_names", d.cipher_names, to_names(CIPHER_NAMES)),
        mac_names=reader.get("tls", "mac_names", d.mac_names, to_names(MAC_NAMES)),
        key_exchange_names=reader.get(
            "tls", "key_exchange_names", d.key_exchange_names, to_names(KEY_EXCHANGE_NAMES)
        ),
        srp_min_version=reader.get("tls", "srp_min_version", d.srp_min_version, to_version),
        srp_cipher_names=reader.get(
            "tls", "srp_cipher_names", d.srp_cipher_names, to_names(CIPHER_NAMES)
        ),
        srp_mac_names=reader.get("tls", "srp_mac_names", d.srp_mac_names, to_names(MAC_NAMES)),
        allow_legacy=reader.get("tls", "allow_legacy", False, to_bool),
        client_trust_anchors=tuple(resolve(Path(item), base) for item in anchors),
        session_cache_size=reader.get("tls", "session_cache_size", 10000, to_positive_int),
        session_lifetime=reader.get("tls", "session_lifetime", 3600, to_positive_int),
    )
    if (cfg.cert_file is None) != (cfg.key_file is None):
        key_name = "cert_file" if cfg.cert_file is None else "key_file"
        raise reader.error("tls", key_name, "cert_file and key_file must be given together")
    if TLS_VERSIONS[cfg.min_version] > TLS_VERSIONS[cfg.max_version]:
        raise reader.error("tls", "min_version", "is above max_version")
    if TLS_VERSIONS[cfg.srp_min_version] > TLS_VERSIONS["1.2"]:
        # RFC 5054 suites exist only up to TLS 1.2.
        raise reader.error("tls", "srp_min_version", "SRP suites exist only up to TLS 1.2")
    forbidden = FORBIDDEN_KEY_EXCHANGES & set(cfg.key_exchange_names)
    if forbidden:
        raise reader.error(
            "tls",
            "key_exchange_names",
            f"anonymous key exchange {sorted(forbidden)[0]} is never allowed",
        )
    if any(kx.startswith("srp") for kx in cfg.key_exchange_names):
        raise reader.error(
            "tls", "key_exchange_names", "SRP key exchange is chosen per connection; remove srp_*"
        )
    weak = weak_tls_settings(cfg)
    if weak and not cfg.allow_legacy:
        raise reader.error(
            "tls", None, f"weak setting {weak[0]} needs allow_legacy = yes (refused by default)"
        )
    return cfg


def _labels(reader: Reader) -> dict[str, LabelConfig]:
    default = _label_config(reader, "profile", "", LabelConfig())
    legacy_days = reader.get("CAhandler", "cert_validity_days", None, to_positive_int)
    if legacy_days is not None and not reader.parser.has_option("profile", "validity_days"):
        default = replace(default, profile=replace(default.profile, validity_days=legacy_days))
    handler_file, _ = legacy_handler(reader)
    if handler_file is not None and not reader.parser.has_option("profile", "backend"):
        # The older python-est (an est_proxy fork) ran this file: it still does.
        default = replace(default, backend="handler", handler_file=handler_file)
    labels = {"": default}
    for section in reader.parser.sections():
        if section.startswith(LABEL_PREFIX):
            name = section[len(LABEL_PREFIX) :]
            labels[name] = _label_config(reader, section, name, default)
    return labels


def _check_labels(reader: Reader, labels: dict[str, LabelConfig]) -> list[str]:
    """Refuse `reenroll_from` naming no label; warn where cmcRA overrides `approval = auto`."""
    warnings = []
    for name, label in labels.items():
        section = f"{LABEL_PREFIX}{name}" if name else "profile"
        for source in label.reenroll_from:
            if source not in labels:
                raise reader.error(
                    section, "reenroll_from", f'no CA label {source!r} ("" names the default)'
                )
        if ID_KP_CMC_RA in label.profile.extended_key_usage and label.approval == "auto":
            warnings.append(
                f"{reader.source}: [{section}] extended_key_usage grants cmcRA: every request "
                "is held for manual approval although approval = auto"
            )
        _check_webhooks(reader, section, label)
        _check_idevid(reader, section, label)
        labels[name] = check_backend(reader, section, label)
    return warnings


def _check_webhooks(reader: Reader, section: str, label: LabelConfig) -> None:
    # The webhook's own trust anchors only: the system store would let any public CA vouch
    # for an internal authorization service.
    urls = (label.authorize_url, label.notify_url)
    if any(url.startswith("https:") for url in urls) and label.webhook_ca_file is None:
        raise reader.error(
            section, "webhook_ca_file", "an https:// webhook needs the CA bundle that signs it"
        )
    if (label.webhook_client_cert is None) != (label.webhook_client_key is None):
        raise reader.error(
            section, "webhook_client_key", "webhook_client_cert and webhook_client_key go together"
        )


def _check_idevid(reader: Reader, section: str, label: LabelConfig) -> None:
    if label.manufacturer_crls and not label.manufacturer_cas:
        raise reader.error(section, "manufacturer_crls", "needs manufacturer_cas")
    if label.idevid_subject == "template":
        try:
            parse_template(label.idevid_template)
        except ValueError as exc:
            raise reader.error(section, "idevid_template", str(exc)) from None


def _label_config(reader: Reader, section: str, name: str, base: LabelConfig) -> LabelConfig:
    profile_changes: dict[str, object] = {"name": name}
    for key, convert in PROFILE_KEYS.items():
        value = reader.get(section, key, None, convert)
        if value is not None:
            profile_changes[PROFILE_FIELD[key]] = value
    label_changes: dict[str, object] = {"name": name}
    for key, convert in LABEL_KEYS.items():
        value = reader.get(section, key, None, convert)
        if value is not None:
            label_changes[key] = value
    for key in LABEL_PATH_KEYS:
        path = reader.path(section, key, None, reader.base)
        if path is not None:
            label_changes[key] = path
    for key in LABEL_PATH_LIST_KEYS:
        items = reader.get(section, key, None, to_list)
        if items is not None:
            folder = reader.base
            label_changes[key] = tuple(resolve(Path(i).expanduser(), folder) for i in items)
    for key in LABEL_SECRET_KEYS:
        secret = reader.get(
            section, key, None, lambda text: to_passphrase(text, reader.base) if text else None
        )
        if secret is not None:
            label_changes[key] = replace(secret, section=section, key=key)
    profile = replace(base.profile, **profile_changes)  # type: ignore[arg-type]
    return replace(base, profile=profile, **label_changes)  # type: ignore[arg-type]


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
