"""`MetricsListener`: the plain-HTTP Prometheus endpoint (a socket and a thread, so in `server`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, start_http_server


class MetricsListener:
    """A plain-HTTP listener serving `registry` at /metrics, in a daemon thread.

    Args:
        registry: what to serve (`python_est.ops.metrics.Metrics.registry`).
        address: IP address to listen on (loopback unless behind a firewall).
        port: TCP port; 0 picks a free one (see `port`).

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(self, registry: CollectorRegistry, address: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, address, registry=registry)

    @property
    def port(self) -> int:
        """The TCP port actually listened on."""
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving and release the port."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
