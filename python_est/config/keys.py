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
    to_positive_float,
    to_positive_int,
    to_san_types,
    to_subject_fixed,
    to_subject_types,
    to_upstream_url,
    to_webhook_url,
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
    "authorize_url": to_webhook_url,
    "notify_url": to_webhook_url,
    "webhook_timeout": to_positive_float,
    "webhook_failure": to_choice("closed", "open"),
    "require_registration": to_bool,
    "csrattrs_subject": str,
    "csrattrs_extensions": str,
    "ca": str,
    "backend": to_choice("embedded", "est", "handler"),
    "upstream_url": to_upstream_url,
    "upstream_user": str,
    "upstream_timeout": to_positive_float,
    "idevid_subject": to_choice("same", "template", "registration"),
    "idevid_template": str,
}
# Label keys naming files, resolved against the config file's directory like other paths.
LABEL_PATH_KEYS = (
    "webhook_ca_file",
    "webhook_client_cert",
    "webhook_client_key",
    "upstream_ca_file",
    "upstream_client_cert",
    "upstream_client_key",
    "handler_file",
)
# Label keys naming a list of files, each resolved like LABEL_PATH_KEYS.
LABEL_PATH_LIST_KEYS = ("manufacturer_cas", "manufacturer_crls")
# A label key read as a secret's source (`file:`, `env:`, `credential:`), never the secret.
LABEL_SECRET_KEYS = ("upstream_password",)
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
            "key_passphrase",
            "expiry_warning_days",
            "pkcs11_module",
            "pkcs11_token",
            "pkcs11_key_label",
            "pkcs11_pin",
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
    "ocsp": frozenset(
        {"enabled", "path", "validity_minutes", "base_url", "signer"}
        | {"http_enabled", "http_address", "http_port"}
    ),
    "profile": frozenset(PROFILE_KEYS)
    | frozenset(LABEL_KEYS)
    | frozenset(LABEL_PATH_KEYS)
    | frozenset(LABEL_SECRET_KEYS)
    | frozenset(LABEL_PATH_LIST_KEYS),
    # The older python-est's and est_proxy's sections (est_proxy's docs/est_proxy.cfg.md and its
    # openssl CA handler's docs); what they map onto is in `config/python_est.cfg`.
    "DEFAULT": frozenset({"debug"}),
    "Daemon": frozenset({"address", "port", "key_file", "cert_file"}),
    "ClientAuth": frozenset({"address", "port", "key_file", "cert_file"}),
    "CAhandler": frozenset(
        {
            "issuing_ca_key",
            "issuing_ca_cert",
            "issuing_ca_key_passphrase",
            "issuing_ca_key_passphrase_variable",
            "ca_cert_chain_list",
            "cert_validity_days",
            "cert_save_path",
            "handler_file",
        }
    ),
    "SRP": frozenset({"userdb"}),
    "Bootstrap": frozenset({"enabled", "endpoint"}),
    "Logging": frozenset(),
}
_EMBEDDED_CA = "certificates are issued by the embedded CA"
_NAME_POLICY = "names are limited per user (`python-est user allow`) and by [profile]"
# Keys of the older products that no longer mean anything, with what replaces them: accepted
# with one warning each.
OBSOLETE_KEYS: dict[str, dict[str, str]] = {
    "CAhandler": {
        "openssl_conf": "extensions come from [profile]",
        "openssl_bin": "no openssl process is run",
        "ca_cert_chain": "use ca_cert_chain_list or [ca] chain_files",
        "issuing_ca_crl": "the CRL is written to [crl] file and served at [crl] path; "
        "revoke with `python-est certs revoke`",
        "save_cert_as_hex": "[ledger] export_dir names each file by its serial in hex",
        "cert_validity_adjust": "a certificate never outlives its CA",
        "cn_enforce": "[profile] password_subjects decides the CN",
        "whitelist": _NAME_POLICY,
        "blacklist": _NAME_POLICY,
        "allowed_domainlist": _NAME_POLICY,
        "blocked_domainlist": _NAME_POLICY,
    },
    "Daemon": {
        "connection_log": "every connection is logged",
        "ca_handler": _EMBEDDED_CA,
    },
    "DEFAULT": {
        "connection_log": "every connection is logged",
        "log_level": "use [logging] level",
        "openssl_bin": "no openssl process is run",
    },
    "Logging": {"log_format": "use [logging] format (plain or json)"},
}
LABEL_PREFIX = "label:"
CA_PREFIX = "ca:"
# The section an est_proxy-style CA handler reads its settings from (python_est.backends).
HANDLER_SECTION = "CAhandler"
NO_NAMES: tuple[str, ...] = ()
