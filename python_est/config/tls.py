"""The `[tls]` section (and the certificate keys of the older `[Daemon]` / `[ClientAuth]`)."""

from __future__ import annotations

from pathlib import Path

from python_est.config.convert import (
    to_bool,
    to_key_type,
    to_list,
    to_names,
    to_positive_int,
    to_version,
)
from python_est.config.keys import NO_NAMES
from python_est.config.model import (
    CIPHER_NAMES,
    FORBIDDEN_KEY_EXCHANGES,
    KEY_EXCHANGE_NAMES,
    MAC_NAMES,
    TLS_VERSIONS,
    TlsConfig,
    weak_tls_settings,
)
from python_est.config.reader import Reader, resolve


def read_tls(reader: Reader, base: Path) -> TlsConfig:
    """The `[tls]` settings, paths resolved against `base`.

    Raises:
        ConfigError: a value is wrong, the settings contradict each other, or a weak setting
            lacks `allow_legacy = yes`.
    """
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
