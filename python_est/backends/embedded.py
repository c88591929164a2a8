"""The `embedded` backend: the CA in this process signs (the default)."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509

from python_est.backends.base import Order, PrivateKey
from python_est.ca import CertificateAuthority
from python_est.keys import KeyType, generate_private_key


class EmbeddedBackend:
    """Issues with `ca` under each label's profile; revocation is the ledger's (the CRL)."""

    kind = "embedded"

    def __init__(self, ca: CertificateAuthority) -> None:
        self._ca = ca

    def ca_certs(self) -> Sequence[x509.Certificate]:
        return self._ca.chain

    def enroll(self, order: Order) -> x509.Certificate:
        return self._ca.issue(order.csr, order.label.profile, now=order.now)

    def serverkeygen(self, order: Order, key_type: KeyType) -> tuple[PrivateKey, x509.Certificate]:
        # §4.4.1: the CSR's own key is ignored; the generated key is certified instead.
        key = generate_private_key(key_type)
        cert = self._ca.issue(
            order.csr, order.label.profile, public_key=key.public_key(), now=order.now
        )
        return key, cert

    def revoke(self, cert: x509.Certificate, reason: str) -> None:
        # The ledger entry the caller marks is the revocation: the CRL is built from it.
        return None
