"""Typed configuration: `load_config(path)` and the frozen values it returns."""

from python_est.config.load import default_config, load_config
from python_est.config.model import (
    ANY_CREDENTIAL,
    CERT_ONLY,
    AuthConfig,
    AuthMethod,
    AuthRequirement,
    BootstrapConfig,
    CaConfig,
    Config,
    LabelConfig,
    LedgerConfig,
    LoggingConfig,
    ServerConfig,
    SrpConfig,
    TlsConfig,
    weak_tls_settings,
)

__all__ = [
    "ANY_CREDENTIAL",
    "CERT_ONLY",
    "AuthConfig",
    "AuthMethod",
    "AuthRequirement",
    "BootstrapConfig",
    "CaConfig",
    "Config",
    "LabelConfig",
    "LedgerConfig",
    "LoggingConfig",
    "ServerConfig",
    "SrpConfig",
    "TlsConfig",
    "default_config",
    "load_config",
    "weak_tls_settings",
]
