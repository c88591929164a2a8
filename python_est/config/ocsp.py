"""`[ocsp]`: the OCSP responder's settings, and its URL in issued certificates."""

from __future__ import annotations

from dataclasses import replace

from python_est.config.convert import (
    to_address,
    to_base_url,
    to_bool,
    to_choice,
    to_port,
    to_positive_int,
    to_web_path,
)
from python_est.config.model import HEALTH_PATH, BootstrapConfig, CrlConfig, LabelConfig, OcspConfig
from python_est.config.reader import Reader


def read_ocsp(reader: Reader, bootstrap: BootstrapConfig, crl: CrlConfig) -> OcspConfig:
    """The `[ocsp]` section.

    Raises:
        ConfigError: a bad value, or a path that covers another resource.
    """
    d = OcspConfig()
    cfg = OcspConfig(
        enabled=reader.get("ocsp", "enabled", d.enabled, to_bool),
        path=reader.get("ocsp", "path", d.path, to_web_path),
        validity_minutes=reader.get(
            "ocsp", "validity_minutes", d.validity_minutes, to_positive_int
        ),
        base_url=reader.get("ocsp", "base_url", d.base_url, to_base_url),
        signer=reader.get("ocsp", "signer", d.signer, to_choice("ca", "delegated")),
        http_enabled=reader.get("ocsp", "http_enabled", d.http_enabled, to_bool),
        http_address=reader.get("ocsp", "http_address", d.http_address, to_address),
        http_port=reader.get("ocsp", "http_port", d.http_port, to_port),
    )
    # The responder answers its path and everything below it (GET): it must not cover another
    # resource.
    taken = {HEALTH_PATH, bootstrap.path, crl.path}
    if cfg.path == "/" or any(p == cfg.path or p.startswith(cfg.path + "/") for p in taken):
        raise reader.error("ocsp", "path", f"{cfg.path} is taken by another resource")
    return cfg


def with_ocsp_url(label: LabelConfig, url: str) -> LabelConfig:
    """`label` issuing certificates that name `url` as their OCSP responder (AIA)."""
    return replace(label, profile=replace(label.profile, ocsp_urls=(url,)))
