"""The CRLs to publish, and the CRL URL each label writes into its certificates (`[crl]`)."""

from __future__ import annotations

from dataclasses import replace

from python_est.ca import can_sign_crls
from python_est.config import Config, LabelConfig
from python_est.config.model import DEFAULT_CA
from python_est.errors import ConfigError
from python_est.ops.revocation import CrlPublisher
from python_est.state import State


def build_crl_publisher(
    config: Config, state: State, ca_name: str = DEFAULT_CA, *, old_root: bool = False
) -> CrlPublisher | None:
    """The publisher of the CRL of the CA `ca_name` (`[crl]` for the `[ca]` CA, NAME.crl next
    to it for a `[ca:NAME]`, "-gN" before ".crl" for its root key generation N > 1), or None
    when CRLs are off. `old_root`: the CRL of the old root of a rollover in progress.

    Raises:
        ConfigError: the CA certificate's keyUsage does not allow signing CRLs.
    """
    if not config.crl.enabled:
        return None
    number = issuing_generation(state, ca_name)
    ca = state.ca_named(ca_name)
    if old_root:
        ca, number = state.rollovers[ca_name].old, number - 1
    if not can_sign_crls(ca):
        section = "crl" if ca_name == DEFAULT_CA else f"ca:{ca_name}"
        raise ConfigError(
            config.source,
            section,
            "enabled" if ca_name == DEFAULT_CA else "cert_file",
            "the CA certificate's keyUsage lacks cRLSign; set [crl] enabled = no",
        )
    crl = config.crl.for_ca(ca_name).for_generation(number)
    return CrlPublisher(
        ca,
        state.ledger,
        crl.file,
        validity_hours=crl.validity_hours,
        ca_name=ca_name,
        generation=number,
    )


def crl_publishers(config: Config, state: State) -> dict[str, CrlPublisher]:
    """Every CRL to serve, by its path: each CA's, and an old root's during its rollover."""
    publishers = {}
    for name in config.ca_names:
        for old_root in (False, True) if name in state.rollovers else (False,):
            publisher = build_crl_publisher(config, state, name, old_root=old_root)
            if publisher is not None:
                number = issuing_generation(state, name) - (1 if old_root else 0)
                publishers[config.crl.for_ca(name).for_generation(number).path] = publisher
    return publishers


def issuing_generation(state: State, name: str) -> int:
    """The key generation of the root that issues for CA `name` (the new one in a rollover)."""
    return state.generations.get(name, 1) + (1 if name in state.rollovers else 0)


def issuing_labels(config: Config, state: State) -> dict[str, LabelConfig]:
    """The labels, each naming in its certificates the CRL of the root key that signs them."""
    if config.crl.url is None:
        return dict(config.labels)
    labels = {}
    for name, label in config.labels.items():
        crl = config.crl.for_ca(label.ca).for_generation(issuing_generation(state, label.ca))
        labels[name] = replace(label, profile=replace(label.profile, crl_urls=(str(crl.url),)))
    return labels
