"""The certificates the TLS layer presents and accepts: the server chain, every CA, each label's
client trust anchors and the manufacturer CAs.
"""

from __future__ import annotations

from cryptography import x509

from python_est.ca import CertificateAuthority
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.policy.idevid import ManufacturerTrust
from python_est.state import State
from python_est.state.manufacturers import Manufacturers


def server_chain(state: State) -> tuple[x509.Certificate, ...]:
    """The TLS server chain; during a rollover of the `[ca]` root, OldWithNew in place of the
    old root, so that a client that trusts only the new root still authenticates the server
    (RFC 7030 §4.1.3). The old root itself is left out: a client that trusts it has it, and
    one that does not would take it for the issuer and stop at a self-signed certificate."""
    rollover = state.rollovers.get(DEFAULT_CA)
    if rollover is None:
        return state.server.chain
    kept = tuple(cert for cert in state.server.chain if cert != rollover.old.certificate)
    return (*kept, rollover.old_with_new)


def all_cas(state: State) -> dict[str, CertificateAuthority]:
    """Every CA of `state` by name (a state built without `cas` has only its `[ca]` CA)."""
    return {DEFAULT_CA: state.ca, **state.cas}


def label_anchors(config: Config, state: State) -> dict[str, tuple[x509.Certificate, ...]]:
    """The trust anchors each label's client certificates must chain to.

    By default a label's own CA's root (issue 16); `[tls] client_trust_anchors`, when given,
    is the operator's explicit list and holds for every label.
    """
    if config.tls.client_trust_anchors:
        return {name: state.client_trust_anchors for name in config.labels}
    anchors = {}
    for name, label in config.labels.items():
        roots = [state.ca_named(label.ca).root]
        rollover = state.rollovers.get(label.ca)
        if rollover is not None:
            roots.append(rollover.old.root)  # its certificates renew until --finish
        anchors[name] = tuple(roots)
    return anchors


def manufacturer_trust(manufacturers: Manufacturers) -> ManufacturerTrust | None:
    """Every label's manufacturer CAs for the TLS layer (`policy.idevid`); None without any."""
    anchors = [cert for certs in manufacturers.anchors.values() for cert in certs]
    return ManufacturerTrust(anchors, manufacturers.crls) if anchors else None
