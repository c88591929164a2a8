"""Prometheus metrics: the counters and histograms (`python_est.server.exporter` serves them).

`Metrics` owns its own `CollectorRegistry` (never prometheus_client's global one), so tests and
reloads can hold several side by side. Every label value passed in must come from a small fixed
set (configured CA labels, operation names, statuses): the routing table's tags
(`python_est.routes`) map client input onto such sets before it reaches here.

Multi-process servers: each process counts for itself and one listener serves only its own
process, so with several worker processes the figures cover one worker. prometheus_client's
multiprocess mode would merge them; it is not wired up.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

NAMESPACE = "python_est"

# Seconds. A handshake with RSA-2048 or SRP-2048 takes a few milliseconds; slow clients and
# deadlines (10 s, 30 s by default) account for the long tail.
_HANDSHAKE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0)


class Metrics:
    """The server's metrics in one registry.

    Args:
        process: also export process, platform and garbage-collector figures.
    """

    def __init__(self, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process:
            ProcessCollector(namespace=NAMESPACE, registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        self._connections = Counter(
            "connections",
            "Connections by how they ended: responded, no_response, handshake_failed.",
            ["result"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._handshakes = Counter(
            "handshakes",
            "TLS handshakes by result (ok, failed) and TLS authentication "
            "(cert, srp, none, cert_rejected; unknown when failed).",
            ["result", "auth"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._handshake_seconds = Histogram(
            "handshake_duration_seconds",
            "Time from accepting a connection to the end of its TLS handshake.",
            ["result"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=_HANDSHAKE_BUCKETS,
        )
        self._requests = Counter(
            "requests",
            "HTTP requests answered, by operation, CA label and status.",
            ["operation", "label", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self._request_seconds = Histogram(
            "request_duration_seconds",
            "Time from the end of the handshake to the response sent.",
            ["operation", "label"],
            namespace=NAMESPACE,
            registry=self.registry,
            buckets=_REQUEST_BUCKETS,
        )
        self._issued = Counter(
            "certificates_issued",
            "Certificates signed and committed to the ledger, by CA label and operation.",
            ["label", "operation"],
            namespace=NAMESPACE,
            registry=self.registry,
        )

    def connection(self, result: str) -> None:
        """Count a finished connection ("responded", "no_response", "handshake_failed")."""
        self._connections.labels(result).inc()

    def handshake(self, result: str, auth: str, seconds: float) -> None:
        """Count a handshake ("ok"/"failed") with its TLS authentication kind and duration."""
        self._handshakes.labels(result, auth).inc()
        self._handshake_seconds.labels(result).observe(seconds)

    def request(self, operation: str, label: str, status: int, seconds: float) -> None:
        """Count an answered request and its latency."""
        self._requests.labels(operation, label, str(status)).inc()
        self._request_seconds.labels(operation, label).observe(seconds)

    def issued(self, label: str, operation: str) -> None:
        """Count a certificate committed to the ledger."""
        self._issued.labels(label, operation).inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
