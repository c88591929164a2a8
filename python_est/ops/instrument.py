"""Feeding `python_est.metrics.Metrics`: per connection (the server's observer) and per issuance.

Label values stay in small fixed sets whatever clients send: an operation is an EST operation
name or one of "healthz", "crl", "bootstrap", "invalid" (a request that did not parse), "other";
a CA label is a configured one, anything else counts as operation "other" with label "".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Protocol

from cryptography import x509

from python_est.config import HEALTH_PATH
from python_est.errors import NotFound
from python_est.ledger import IssuedCertificate, Ledger, PendingRequest, PendingStatus
from python_est.messages import parse_est_path
from python_est.metrics import Metrics
from python_est.policy import PeerIdentity


class ConnectionFacts(Protocol):
    """What the server reports about one finished connection (`python_est.server` Outcome)."""

    @property
    def peer(self) -> PeerIdentity | None: ...
    @property
    def request(self) -> str: ...  # "METHOD target", or "-" when no request was read
    @property
    def status(self) -> int | None: ...  # None when no response was sent
    @property
    def handshake_seconds(self) -> float | None: ...
    @property
    def seconds(self) -> float: ...


class ConnectionMetrics:
    """The server's connection observer: connections, handshakes, requests and latencies.

    Args:
        metrics: where to count.
        labels: the configured CA labels ("" for the unlabelled paths).
        crl_path: the CRL path (operation "crl").
        bootstrap_path: the bootstrap page path (operation "bootstrap").
    """

    def __init__(
        self,
        metrics: Metrics,
        labels: Iterable[str],
        *,
        crl_path: str | None = None,
        bootstrap_path: str | None = None,
    ) -> None:
        self._metrics = metrics
        self._labels = frozenset(labels)
        self._named = {HEALTH_PATH: "healthz"}
        if crl_path:
            self._named[crl_path] = "crl"
        if bootstrap_path:
            self._named[bootstrap_path] = "bootstrap"

    def __call__(self, outcome: ConnectionFacts) -> None:
        peer = outcome.peer
        handshake = outcome.handshake_seconds or 0.0
        if peer is None:
            self._metrics.handshake("failed", "unknown", handshake)
            self._metrics.connection("handshake_failed")
            return
        self._metrics.handshake("ok", auth_kind(peer), handshake)
        if outcome.status is None:
            self._metrics.connection("no_response")
            return
        self._metrics.connection("responded")
        operation, label = self.classify(outcome.request)
        seconds = max(outcome.seconds - handshake, 0.0)
        self._metrics.request(operation, label, outcome.status, seconds)

    def classify(self, request: str) -> tuple[str, str]:
        """(operation, label) for a request line as the server logs it ("-": none parsed)."""
        if request == "-":
            return "invalid", ""
        target = request.partition(" ")[2]
        path = target.split("?", 1)[0]
        named = self._named.get(path)
        if named is not None:
            return named, ""
        try:
            est = parse_est_path(path)
        except NotFound:
            return "other", ""
        if est.label not in self._labels:
            return "other", ""
        return est.operation.value, est.label


def auth_kind(peer: PeerIdentity) -> str:
    """The TLS authentication of a connection: cert, srp, none, or cert_rejected."""
    if peer.client_cert is not None and not peer.client_cert.valid and peer.srp_user is None:
        return "cert_rejected"
    return peer.tls_auth.value


class CountingLedger:
    """A `Ledger` that counts every recorded certificate in `metrics`, delegating the rest.

    Counting at the ledger sees every issuance, whichever path led to it (EST, the bootstrap
    page, an approved request), and only certificates actually committed.
    """

    def __init__(self, ledger: Ledger, on_record: Callable[[IssuedCertificate], None]) -> None:
        self._ledger = ledger
        self._on_record = on_record

    def record(self, entry: IssuedCertificate) -> None:
        self._ledger.record(entry)
        self._on_record(entry)

    def get(self, serial: int) -> IssuedCertificate | None:
        return self._ledger.get(serial)

    def list_certificates(
        self,
        *,
        limit: int = 100,
        offset: int = 0,
        label: str | None = None,
        revoked: bool | None = None,
    ) -> list[IssuedCertificate]:
        return self._ledger.list_certificates(
            limit=limit, offset=offset, label=label, revoked=revoked
        )

    def revoke(
        self, serial: int, reason: str, *, when: datetime | None = None
    ) -> IssuedCertificate:
        return self._ledger.revoke(serial, reason, when=when)

    def current_certificates(
        self, label: str, subject: str, now: datetime
    ) -> list[IssuedCertificate]:
        return self._ledger.current_certificates(label, subject, now)

    def is_revoked(self, serial: int) -> bool:
        return self._ledger.is_revoked(serial)

    def count(self) -> int:
        return self._ledger.count()

    def add_pending(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        label: str,
        operation: str,
        requester: str,
        auth_method: str,
        match: str | None = None,
    ) -> PendingRequest:
        return self._ledger.add_pending(
            csr,
            label=label,
            operation=operation,
            requester=requester,
            auth_method=auth_method,
            match=match,
        )

    def find_pending(
        self, label: str, public_key_sha256: str, subject: str
    ) -> PendingRequest | None:
        return self._ledger.find_pending(label, public_key_sha256, subject)

    def get_pending(self, request_id: str) -> PendingRequest | None:
        return self._ledger.get_pending(request_id)

    def list_pending(self, status: PendingStatus | None = None) -> list[PendingRequest]:
        return self._ledger.list_pending(status)

    def decide_pending(
        self, request_id: str, approve: bool, reason: str | None = None
    ) -> PendingRequest:
        return self._ledger.decide_pending(request_id, approve, reason)

    def claim_pending(
        self, request_id: str, *, holder: str, lease_seconds: int
    ) -> PendingRequest | None:
        return self._ledger.claim_pending(request_id, holder=holder, lease_seconds=lease_seconds)

    def mark_pending_issued(self, request_id: str, serial: int, *, holder: str) -> PendingRequest:
        return self._ledger.mark_pending_issued(request_id, serial, holder=holder)
