"""The composition root: config → state → service → routes → server, built in one place.

Everything a connection needs is built here, at start-up and on every reload (SIGHUP), in
every serving process, so that a reload swaps all of it at once. The CLI (`serve`, the daemon
and the workers), the tests and the benchmarks build servers through this module only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from python_est.backends import Backend, EstBackend, HandlerBackend, HandlerLoadError
from python_est.bootstrap import BootstrapPage, derive_form_secret
from python_est.ca import can_sign_crls
from python_est.client.upstream import upstream_exchange, upstream_name
from python_est.config import Config
from python_est.devices import DeviceRegistry
from python_est.errors import ConfigError
from python_est.ledger import IssuedCertificate
from python_est.ops import ConnectionMetrics, HealthCheck, OpsEndpoints
from python_est.ops.metrics import Metrics
from python_est.ops.revocation import CrlPublisher
from python_est.policy import ClientChainValidator
from python_est.ratelimit import CounterStore, Limits, LoginLimiter, SqliteCounters
from python_est.routes import RoutingTable, est_resolver
from python_est.server import EstServer, Handshaker, Listener, MetricsListener
from python_est.server.courier import build_webhooks
from python_est.service import EstService, check_label
from python_est.state import State, lockouts_path
from python_est.statedir import StateDir
from python_est.tls import TicketKeys, TlsEndpoint


def check_csrattrs(config: Config) -> None:
    """Parse every label's `csrattrs` now, so a typo stops start-up with the key named."""
    for name, label in config.labels.items():
        try:
            check_label(label)
        except ValueError as exc:
            section = f"label:{name}" if name else "profile"
            raise ConfigError(config.source, section, "csrattrs", str(exc)) from None


def build_app(
    config: Config,
    state: State,
    ticket_keys: TicketKeys | None = None,
    *,
    metrics: Metrics | None = None,
) -> tuple[Handshaker, RoutingTable]:
    """The TLS endpoint and the routing table for `config` and `state`.

    Raises:
        ConfigError: a label's csrattrs cannot be parsed, or `[crl]` cannot be served.
        ValueError: the TLS settings or the server key cannot be used.
    """
    check_csrattrs(config)
    limiter = failure_limiter(config, state)  # shared by the workers and `lockouts`
    authorizers, notify = build_webhooks(config)
    counted = None if metrics is None else lambda e: metrics.issued(e.label, e.operation)
    service = EstService(
        labels=config.labels,
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=limiter,
        realm=config.auth.realm,
        pending_retry_after=config.server.pending_retry_after,
        on_issued=_each(counted, notify),
        authorizers=authorizers,
        devices=device_registry(config),
        backends=build_backends(config),
    )
    # Clients (libest's estclient, openssl s_client -cert) often send only their leaf, so the
    # EST CA's own issuing certificates help build paths without becoming trust anchors.
    validator = ClientChainValidator(
        state.client_trust_anchors,
        state.ledger.is_revoked,
        intermediates=state.ca.chain[:-1],
    )
    endpoint = TlsEndpoint(
        cert_chain=state.server.chain,
        private_key=state.server.private_key,
        verifier_db=state.users.srp_verifiers() if state.users is not None else None,
        chain_validator=validator,
        params=config.tls,
        limiter=limiter,  # shared with the service: SRP and Basic failures count together
        ticket_keys=ticket_keys,
    )
    page = BootstrapPage(
        service,
        path=config.bootstrap.path,
        enabled=config.bootstrap.enabled,
        # Derived from the CA key, which every worker and every reload share, so a form
        # served by one process is accepted by any other.
        form_secret=derive_form_secret(state.ca.private_key),
    )
    return endpoint, routing_table(service, page, build_ops(config, state))


def routing_table(service: EstService, page: BootstrapPage, ops: OpsEndpoints) -> RoutingTable:
    """The one routing table: `/healthz` and the CRL, the bootstrap page, then the EST paths.

    Every route but the two operational ones refreshes the CRL after answering when it has
    lived half its validity, so a server that answers any request keeps its CRL fresh.
    """
    table = RoutingTable(est_resolver(service.operation, then=ops.refresh_crl))
    ops.add_routes(table)
    if page.enabled:
        # A disabled page's path is an unknown path: the EST resolver answers it 404.
        table.add(page.path, "bootstrap", page.handle, then=ops.refresh_crl)
    return table


def build_server(
    config: Config,
    state: State,
    *,
    listener: Listener | None = None,
    ticket_keys: TicketKeys | None = None,
    metrics: Metrics | None = None,
) -> EstServer:
    """Wire the loaded state into a ready-to-run `EstServer` (used by serve and by tests).

    Args:
        config: the configuration.
        state: what `open_state(config)` loaded.
        listener: a listening socket to serve (worker processes); None binds the configured
            address and port.
        ticket_keys: the shared session-ticket keys; None: no tickets.
        metrics: where to count connections, requests and issued certificates; None: nowhere.
    """
    handshaker, handler = build_app(config, state, ticket_keys, metrics=metrics)
    cfg = config.server
    return EstServer(
        address=cfg.address,
        port=cfg.port,
        handshaker=handshaker,
        handler=handler,
        max_connections=cfg.max_connections,
        max_connections_per_address=cfg.max_connections_per_address,
        proxy_protocol=cfg.proxy_protocol,
        trusted_proxies=cfg.trusted_proxies,
        backlog=cfg.backlog,
        handshake_timeout=cfg.handshake_timeout,
        request_timeout=cfg.request_timeout,
        header_timeout=cfg.header_timeout,
        max_body_bytes=cfg.max_body_bytes,
        listener=listener,
        observer=None if metrics is None else ConnectionMetrics(metrics),
    )


def build_backends(config: Config) -> dict[str, Backend]:
    """The issuing backend of every label that does not use the embedded CA.

    Raises:
        ConfigError: a handler file does not load, or an upstream's files cannot be read.
    """
    backends: dict[str, Backend] = {}
    for name, label in config.labels.items():
        section = f"label:{name}" if name else "profile"
        if label.backend == "est":
            try:
                exchange = upstream_exchange(label, config.source)
            except (OSError, ValueError) as exc:
                raise ConfigError(config.source, section, "upstream_ca_file", str(exc)) from None
            backends[name] = EstBackend(exchange, upstream_name(label))
        elif label.backend == "handler" and label.handler_file is not None:
            try:
                backends[name] = HandlerBackend(
                    label.handler_file,
                    dict(label.handler_options),
                    label=name,
                    retry_after=config.server.pending_retry_after,
                )
            except HandlerLoadError as exc:
                raise ConfigError(config.source, section, "handler_file", str(exc)) from None
    return backends


def device_registry(config: Config) -> DeviceRegistry:
    """The pre-registered devices of the state directory (`python-est devices`).

    Raises:
        ConfigError: the registry cannot be opened.
    """
    path = StateDir(config.server.state_dir).devices
    try:
        return DeviceRegistry(path)
    except (OSError, sqlite3.Error) as exc:
        raise ConfigError(
            config.source, "server", "state_dir", f"cannot open {path}: {exc}"
        ) from None


def failure_limiter(config: Config, state: State) -> LoginLimiter:
    """The password-failure counters: in the state directory, or in the shared database.

    Every server process and `python-est lockouts` open the same ones.

    Raises:
        ConfigError: the counter file cannot be opened.
    """
    auth = config.auth
    limits = Limits(
        max_failures=auth.max_failures,
        account_max_failures=auth.account_max_failures,
        address_max_failures=auth.address_max_failures,
        window=auth.failure_window,
        lockout=auth.lockout,
        known_good=auth.known_good,
    )
    store: CounterStore
    if state.database is None:
        path = lockouts_path(config)
        try:
            store = SqliteCounters(path)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(
                config.source, "server", "state_dir", f"cannot open {path}: {exc}"
            ) from None
    else:
        from python_est.ratelimit.database import DatabaseCounters

        store = DatabaseCounters(state.database)
    return LoginLimiter(store, limits)


def shared_ticket_keys(config: Config, state: State) -> TicketKeys | None:
    """Session-ticket keys shared through the database (rotated there); None without one."""
    if state.database is None:
        return None
    from python_est.ticketkeys.database import TicketKeyRing

    return TicketKeyRing(state.database, ticket_lifetime=config.tls.session_lifetime).keys


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


def _each(
    *calls: Callable[[IssuedCertificate], None] | None,
) -> Callable[[IssuedCertificate], None] | None:
    # The service takes one on_issued: the metrics' count and the notification, as configured.
    present = [call for call in calls if call is not None]
    if not present:
        return None

    def every(entry: IssuedCertificate) -> None:
        for call in present:
            call(entry)

    return every
