"""Which sections and keys the loader accepts, and the keys of the older product."""

from __future__ import annotations

from collections.abc import Callable

from python_est.config.convert import (
    to_auth_requirement,
    to_bool,
    to_choice,
    to_eku,
    to_key_type,
    to_key_usage,
    to_list,
    to_positive_int,
    to_san_types,
    to_subject_fixed,
    to_subject_types,
)

PROFILE_KEYS: dict[str, Callable[[str], object]] = {
    "validity_days": to_positive_int,
    "key_usage": to_key_usage,
    "extended_key_usage": to_eku,
    "san_types": to_san_types,
    "max_sans": to_positive_int,
    "subject_attributes": to_subject_types,
    "subject_fixed": to_subject_fixed,
    "max_rdns": to_positive_int,
    "max_attributes": to_positive_int,
    "max_extensions": to_positive_int,
}
LABEL_KEYS: dict[str, Callable[[str], object]] = {
    "enroll_auth": to_auth_requirement,
    "reenroll_auth": to_auth_requirement,
    "serverkeygen_auth": to_auth_requirement,
    "password_subjects": to_choice("own", "any"),
    "csrattrs": str,
    "require_pop": to_bool,
    "approval": to_choice("auto", "manual"),
    "enforce_csrattrs": to_bool,
    "serverkeygen": to_bool,
    "serverkeygen_key_type": to_key_type,
    "reenroll_from": to_list,
    "base64_lines": to_choice("auto", "wrapped", "single"),
}
PROFILE_FIELD = {
    "validity_days": "validity_days",
    "key_usage": "key_usage",
    "extended_key_usage": "extended_key_usage",
    "san_types": "san_types",
    "max_sans": "max_sans",
    "subject_attributes": "subject_attributes",
    "subject_fixed": "subject_fixed",
    "max_rdns": "max_rdns",
    "max_attributes": "max_attributes",
    "max_extensions": "max_extensions",
}

KNOWN_KEYS: dict[str, frozenset[str]] = {
    "server": frozenset(
        {
            "address",
            "port",
            "state_dir",
            "server_names",
            "max_connections",
            "max_connections_per_address",
            "backlog",
            "handshake_timeout",
            "request_timeout",
            "max_body_bytes",
            "pending_retry_after",
            "workers",
            "shutdown_grace",
            "proxy_protocol",
            "trusted_proxies",
            "header_timeout",
        }
    ),
    "logging": frozenset({"level", "format"}),
    "ca": frozenset(
        {
            "common_name",
            "organization",
            "key_type",
            "validity_days",
            "issuing_ca",
            "issuing_key_type",
            "cert_file",
            "key_file",
            "chain_files",
        }
    ),
    "tls": frozenset(
        {
            "cert_file",
            "key_file",
            "server_key_type",
            "server_validity_days",
            "min_version",
            "max_version",
            "cipher_names",
            "mac_names",
            "key_exchange_names",
            "srp_min_version",
            "srp_cipher_names",
            "srp_mac_names",
            "allow_legacy",
            "client_trust_anchors",
            "session_cache_size",
            "session_lifetime",
        }
    ),
    "srp": frozenset({"enabled", "user_db", "group_bits", "min_password_length"}),
    "ledger": frozenset({"path", "export_dir", "url", "pool_size"}),
    "auth": frozenset(
        {"realm", "max_failures", "failure_window", "lockout"}
        | {"account_max_failures", "address_max_failures", "known_good"}
    ),
    "bootstrap": frozenset({"enabled", "path"}),
    "metrics": frozenset({"enabled", "address", "port"}),
    "crl": frozenset({"enabled", "path", "file", "validity_hours", "base_url"}),
    "profile": frozenset(PROFILE_KEYS) | frozenset(LABEL_KEYS),
    # Older python-est / est_proxy sections.
    "DEFAULT": frozenset({"debug"}),
    "Daemon": frozenset({"address", "port", "key_file", "cert_file"}),
    "CAhandler": frozenset(
        {
            "issuing_ca_key",
            "issuing_ca_cert",
            "ca_cert_chain_list",
            "cert_validity_days",
            "cert_save_path",
        }
    ),
    "SRP": frozenset({"userdb"}),
    "Bootstrap": frozenset({"enabled", "endpoint"}),
}
# Keys of the older product that no longer mean anything: accepted with a warning each.
OBSOLETE_KEYS: dict[str, frozenset[str]] = {
    "CAhandler": frozenset({"handler_file", "openssl_conf", "openssl_bin", "ca_cert_chain"}),
    "Daemon": frozenset({"connection_log", "ca_handler"}),
    "DEFAULT": frozenset({"log_level"}),
}
LABEL_PREFIX = "label:"
NO_NAMES: tuple[str, ...] = ()
