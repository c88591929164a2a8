"""The Prometheus listener of a serving process (`[metrics]`)."""

from __future__ import annotations

from python_est.config import Config
from python_est.errors import ConfigError
from python_est.ops.metrics import Metrics
from python_est.server import MetricsListener


def start_metrics_listener(
    config: Config, metrics: Metrics | None = None, *, port_offset: int = 0
) -> MetricsListener | None:
    """Start the Prometheus listener `[metrics]` describes; None when it is off.

    Args:
        config: the configuration.
        metrics: what to serve (None: a new, empty `Metrics`).
        port_offset: added to `[metrics] port`, so that the workers of a pre-forked server
            listen on consecutive ports; ignored for port 0 (any free port).

    Raises:
        ConfigError: the address and port cannot be bound.
    """
    cfg = config.metrics
    if not cfg.enabled:
        return None
    port = cfg.port + port_offset if cfg.port else 0
    registry = (metrics if metrics is not None else Metrics()).registry
    try:
        return MetricsListener(registry, cfg.address, port)
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
        self.metrics: Metrics | None = None

    @property
    def port(self) -> int | None:
        """The port the listener is bound to; None when not started."""
        return None if self._listener is None else self._listener.port

    def start(self, config: Config, *, port_offset: int = 0) -> None:
        """Start the listener if `[metrics] enabled` (see `start_metrics_listener`)."""
        self.close()
        metrics = Metrics()
        self._listener = start_metrics_listener(config, metrics, port_offset=port_offset)
        if self._listener is not None:
            self.metrics = metrics

    def close(self) -> None:
        """Stop the listener, if any."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.metrics = None
