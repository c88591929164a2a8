"""Operating the server: health check, CRL publication, metrics, wired from the configuration.

Split by concept: `health` (`HealthCheck`), `endpoints` (`OpsEndpoints`: `/healthz` and the CRL
path in front of the EST handler) and `instrument` (the connection observer and the counting
ledger that feed `python_est.metrics`). The functions below build them from a `Config` and a
loaded `State`; `python_est.cli.serve` composes them with the service.
"""

from __future__ import annotations

from python_est.ca import can_sign_crls
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.ledger import Ledger
from python_est.metrics import Metrics, MetricsListener
from python_est.ops.endpoints import PKIX_CRL, Handler, OpsEndpoints
from python_est.ops.health import HealthCheck, HealthReport
from python_est.ops.instrument import ConnectionFacts, ConnectionMetrics, CountingLedger, auth_kind
from python_est.revocation import CrlPublisher
from python_est.state import State


def build_crl_publisher(config: Config, state: State) -> CrlPublisher | None:
    """The CRL publisher `[crl]` describes, or None when CRLs are off.

    Raises:
        ConfigError: the CA certificate's keyUsage does not allow signing CRLs.
    """
    if not config.crl.enabled:
        return None
    if not can_sign_crls(state.ca):
        raise ConfigError(
            config.source,
            "crl",
            "enabled",
            "the CA certificate's keyUsage lacks cRLSign; set enabled = no",
        )
    return CrlPublisher(
        state.ca, state.ledger, config.crl.file, validity_hours=config.crl.validity_hours
    )


def build_ops(config: Config, state: State) -> OpsEndpoints:
    """The operational endpoints for `state`; the CRL is brought up to date now.

    Raises:
        ConfigError: as `build_crl_publisher`.
    """
    health = HealthCheck(state.ca, state.ledger, state.users)
    crl = build_crl_publisher(config, state)
    ops = OpsEndpoints(health, crl, crl_path=config.crl.path)
    ops.refresh_crl()
    return ops


def counting_ledger(ledger: Ledger, metrics: Metrics) -> Ledger:
    """`ledger`, counting each recorded certificate as issued in `metrics`."""
    return CountingLedger(ledger, lambda entry: metrics.issued(entry.label, entry.operation))


def connection_metrics(config: Config, metrics: Metrics) -> ConnectionMetrics:
    """The server observer that counts connections, handshakes and requests in `metrics`."""
    return ConnectionMetrics(
        metrics,
        config.labels,
        crl_path=config.crl.path if config.crl.enabled else None,
        bootstrap_path=config.bootstrap.path if config.bootstrap.enabled else None,
    )


def start_metrics_listener(config: Config, *, port_offset: int = 0) -> MetricsListener | None:
    """Start the Prometheus listener `[metrics]` describes; None when it is off.

    Args:
        config: the configuration.
        port_offset: added to `[metrics] port`, so that the workers of a pre-forked server
            listen on consecutive ports; ignored for port 0 (any free port).

    Raises:
        ConfigError: the address and port cannot be bound.
    """
    cfg = config.metrics
    if not cfg.enabled:
        return None
    port = cfg.port + port_offset if cfg.port else 0
    try:
        return MetricsListener(Metrics(), cfg.address, port)
    except OSError as exc:
        raise ConfigError(
            config.source, "metrics", "port", f"cannot listen on {cfg.address}:{port}: {exc}"
        ) from None


class ProcessMetrics:
    """The metrics of one serving process, and their listener, once `start` has run.

    Counters live in process memory, so each serving process (the only one, or each pre-forked
    worker) starts its own, after any fork; `metrics` is None until then and when disabled.
    """

    def __init__(self) -> None:
        self._listener: MetricsListener | None = None

    @property
    def metrics(self) -> Metrics | None:
        return None if self._listener is None else self._listener.metrics

    @property
    def port(self) -> int | None:
        """The port the listener is bound to; None when not started."""
        return None if self._listener is None else self._listener.port

    def start(self, config: Config, *, port_offset: int = 0) -> None:
        """Start the listener if `[metrics] enabled` (see `start_metrics_listener`)."""
        self.close()
        self._listener = start_metrics_listener(config, port_offset=port_offset)

    def close(self) -> None:
        """Stop the listener, if any."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None


__all__ = [
    "PKIX_CRL",
    "ConnectionFacts",
    "ConnectionMetrics",
    "CountingLedger",
    "Handler",
    "HealthCheck",
    "HealthReport",
    "OpsEndpoints",
    "ProcessMetrics",
    "auth_kind",
    "build_crl_publisher",
    "build_ops",
    "connection_metrics",
    "counting_ledger",
    "start_metrics_listener",
]
