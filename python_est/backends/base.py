"""The issuing-backend interface: what the service asks of whoever issues for a label.

`EstService` holds one `Backend` per label and never knows which kind it talks to
(docs/architecture.md, "Issuing backends"). Local policy (authentication, linking, subject
policy, devices, webhooks, manual approval) runs in the service before a backend is asked; the
service also records every certificate a backend returns in the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from python_est.config import LabelConfig
from python_est.keys import KeyType
from python_est.messages import Operation

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class Order:
    """One checked request for a certificate.

    Attributes:
        csr: the (approved) CSR.
        label: its label (the embedded CA applies the label's profile).
        operation: SIMPLEENROLL, SIMPLEREENROLL or SERVERKEYGEN.
        now: the issuance time.
        requester: who asked (a deferred request's retry is correlated per requester).
    """

    csr: x509.CertificateSigningRequest
    label: LabelConfig
    operation: Operation
    now: datetime
    requester: str


class PollStore(Protocol):
    """Where a backend keeps what correlates a deferred request with its retry (the ledger:
    shared by every worker and instance, and kept across restarts)."""

    def poll_id(self, label: str, requester: str, fingerprint: str) -> str | None: ...
    def keep_poll(self, label: str, requester: str, fingerprint: str, poll_id: str) -> None: ...
    def forget_poll(self, label: str, requester: str, fingerprint: str) -> None: ...


def recorded_ca(label: LabelConfig) -> str:
    """The CA name the ledger records for `label`'s certificates: its CA for the embedded
    backend, else "KIND:LABEL" (`est:corp`), so that no CRL or OCSP answer of ours covers a
    certificate an upstream or a CA handler signed."""
    return label.ca if label.backend == "embedded" else f"{label.backend}:{label.name}"


class Deferred(Exception):
    """The backend accepted the request but has not issued yet (RFC 7030 §4.2.3: 202).

    The client retries with the same request after `retry_after` seconds.
    """

    def __init__(self, retry_after: int, detail: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
        self.detail = detail


class Backend(Protocol):
    """Issues certificates and answers /cacerts for one label.

    Every method may raise an `EstError` with a status and a reason for the client (an upstream
    that is down: 503; one that answers nonsense: 502; one that refuses the request: 4xx).
    """

    @property
    def kind(self) -> str:
        """`embedded`, `est` or `handler` (for logs and the audit trail)."""
        ...

    def ca_certs(self) -> Sequence[x509.Certificate]:
        """The CA certificates /cacerts returns (RFC 7030 §4.1.3)."""
        ...

    def enroll(self, order: Order) -> x509.Certificate:
        """The certificate for `order.csr`'s key.

        Raises:
            Deferred: not issued yet; the retry with the same CSR is correlated.
        """
        ...

    def serverkeygen(self, order: Order, key_type: KeyType) -> tuple[PrivateKey, x509.Certificate]:
        """A new key of `key_type` and its certificate (RFC 7030 §4.4).

        Raises:
            Deferred: not issued yet.
        """
        ...

    def revoke(self, cert: x509.Certificate, reason: str) -> None:
        """Revoke `cert` where it was issued (the ledger is marked by the caller)."""
        ...
