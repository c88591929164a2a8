"""Feeding `python_est.ops.metrics.Metrics` per connection: the server's observer.

A request counts under the (operation, label) tag its route in the routing table gave it
(`python_est.routes`), so label values stay in the table's small fixed sets whatever clients
send. Issued certificates are counted by the service's `on_issued` hook.
"""

from __future__ import annotations

from typing import Protocol

from python_est.ops.metrics import Metrics
from python_est.policy import PeerIdentity
from python_est.routes import INVALID, RouteTag


class ConnectionFacts(Protocol):
    """What the server reports about one finished connection (`python_est.server` Outcome)."""

    @property
    def peer(self) -> PeerIdentity | None: ...
    @property
    def tag(self) -> RouteTag | None: ...  # None when no request was read
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
    """

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

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
        tag = outcome.tag or INVALID
        seconds = max(outcome.seconds - handshake, 0.0)
        self._metrics.request(tag.operation, tag.label, outcome.status, seconds)


def auth_kind(peer: PeerIdentity) -> str:
    """The TLS authentication of a connection: cert, srp, none, or cert_rejected."""
    if peer.client_cert is not None and not peer.client_cert.valid and peer.srp_user is None:
        return "cert_rejected"
    return peer.tls_auth.value
