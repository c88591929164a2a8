"""The composition root: config → state → service → routes → server, built in one place.

Everything a connection needs is built here, at start-up and on every reload (SIGHUP), in
every serving process, so that a reload swaps all of it at once. The CLI (`serve`, the daemon
and the workers), the tests and the benchmarks build servers through this module only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from cryptography import x509

from python_est.backends import (
    Backend,
    EstBackend,
    HandlerBackend,
    HandlerLoadError,
    PollStore,
)
from python_est.bootstrap import BootstrapPage, derive_form_secret
from python_est.ca import CertificateAuthority, can_sign_crls
from python_est.client.upstream import upstream_exchange, upstream_name
from python_est.config import Config, LabelConfig
from python_est.config.model import DEFAULT_CA
from python_est.devices import DeviceRegistry
from python_est.errors import ConfigError, NotFound
from python_est.keks import KekStore
from python_est.ledger import IssuedCertificate
from python_est.messages import HttpRequest, HttpResponse
from python_est.ops import ConnectionMetrics, HealthCheck, OpsEndpoints
from python_est.ops.metrics import Metrics
from python_est.ops.ocsp import OcspAuthority, OcspEndpoint, OcspResponder
from python_est.ops.revocation import CrlPublisher
from python_est.policy import ClientChainValidator, PeerIdentity
from python_est.policy.idevid import ManufacturerTrust
from python_est.ratelimit import CounterStore, Limits, LoginLimiter, SqliteCounters
from python_est.routes import RoutingTable, est_resolver
from python_est.server import EstServer, Handshaker, Listener, MetricsListener, PlainHandshaker
from python_est.server.courier import build_webhooks
from python_est.service import EstService, LabelError, check_label, signer_from
from python_est.state import State, lockouts_path
from python_est.state.device_srp import DeviceSrpVerifiers
from python_est.state.manufacturers import Manufacturers, load_manufacturers
from python_est.state.ocsp import load_ocsp_signer
from python_est.statedir import StateDir
from python_est.tls import TicketKeys, TlsEndpoint


def check_csrattrs(config: Config) -> None:
    """Parse every label's CSR attribute keys now, so a typo stops start-up with the key named."""
    for name, label in config.labels.items():
        try:
            check_label(label)
        except LabelError as exc:
            section = f"label:{name}" if name else "profile"
            raise ConfigError(config.source, section, exc.key, str(exc)) from None


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
    manufacturers = load_manufacturers(config)  # re-read on every reload: new CRLs apply
    counted = None if metrics is None else lambda e: metrics.issued(e.label, e.operation)
    devices = device_registry(config)
    service = EstService(
        labels=issuing_labels(config, state),
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=limiter,
        realm=config.auth.realm,
        pending_retry_after=config.server.pending_retry_after,
        on_issued=_each(counted, notify),
        authorizers=authorizers,
        devices=devices,
        # RFC 7030 §4.4.2: the EST server generates the key, so its TLS identity signs it.
        key_signer=signer_from(state.server.private_key, state.server.chain),
        keks=KekStore(StateDir(config.server.state_dir).keks).lookup,
        cas=all_cas(state),
        client_anchors=label_anchors(config, state),
        rollovers=state.rollovers,
        backends=build_backends(config, state.ledger),
        manufacturers=manufacturers.anchors,
    )
    # Clients (libest's estclient, openssl s_client -cert) often send only their leaf, so the
    # EST CAs' own issuing certificates help build paths without becoming trust anchors.
    validator = ClientChainValidator(
        state.client_trust_anchors,
        state.ledger.is_revoked,
        intermediates=[cert for ca in all_cas(state).values() for cert in ca.chain[:-1]],
        manufacturers=manufacturer_trust(manufacturers),
    )
    endpoint = TlsEndpoint(
        cert_chain=server_chain(state),
        private_key=state.server.private_key,
        # One-time device codes are SRP passwords too (issue 18 item 2, `state.device_srp`).
        verifier_db=(
            DeviceSrpVerifiers(state.users.srp_verifiers(), devices, _utc_now)
            if state.users is not None
            else None
        ),
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
        form_secret=derive_form_secret(state.ca.key),
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


def build_backends(config: Config, polls: PollStore) -> dict[str, Backend]:
    """The issuing backend of every label that does not use the embedded CA; `polls` keeps
    a CA handler's poll identifiers (the state's ledger).

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
                    polls=polls,
                )
            except HandlerLoadError as exc:
                raise ConfigError(config.source, section, "handler_file", str(exc)) from None
    return backends


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


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


def build_crl_publisher(
    config: Config, state: State, ca_name: str = DEFAULT_CA, *, old_root: bool = False
) -> CrlPublisher | None:
    """The publisher of the CRL of the CA `ca_name` (`[crl]` for the `[ca]` CA, NAME.crl next
    to it for a `[ca:NAME]`, "-gN" before ".crl" for its root key generation N > 1), or None
    when CRLs are off. `old_root`: the CRL of the old root of a rollover in progress.

    Raises:
        ConfigError: the CA certificate's keyUsage does not allow signing CRLs.
    """
    if not config.crl.enabled:
        return None
    number = issuing_generation(state, ca_name)
    ca = state.ca_named(ca_name)
    if old_root:
        ca, number = state.rollovers[ca_name].old, number - 1
    if not can_sign_crls(ca):
        section = "crl" if ca_name == DEFAULT_CA else f"ca:{ca_name}"
        raise ConfigError(
            config.source,
            section,
            "enabled" if ca_name == DEFAULT_CA else "cert_file",
            "the CA certificate's keyUsage lacks cRLSign; set [crl] enabled = no",
        )
    crl = config.crl.for_ca(ca_name).for_generation(number)
    return CrlPublisher(
        ca,
        state.ledger,
        crl.file,
        validity_hours=crl.validity_hours,
        ca_name=ca_name,
        generation=number,
    )


def crl_publishers(config: Config, state: State) -> dict[str, CrlPublisher]:
    """Every CRL to serve, by its path: each CA's, and an old root's during its rollover."""
    publishers = {}
    for name in config.ca_names:
        for old_root in (False, True) if name in state.rollovers else (False,):
            publisher = build_crl_publisher(config, state, name, old_root=old_root)
            if publisher is not None:
                number = issuing_generation(state, name) - (1 if old_root else 0)
                publishers[config.crl.for_ca(name).for_generation(number).path] = publisher
    return publishers


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


def issuing_generation(state: State, name: str) -> int:
    """The key generation of the root that issues for CA `name` (the new one in a rollover)."""
    return state.generations.get(name, 1) + (1 if name in state.rollovers else 0)


def issuing_labels(config: Config, state: State) -> dict[str, LabelConfig]:
    """The labels, each naming in its certificates the CRL of the root key that signs them."""
    if config.crl.url is None:
        return dict(config.labels)
    labels = {}
    for name, label in config.labels.items():
        crl = config.crl.for_ca(label.ca).for_generation(issuing_generation(state, label.ca))
        labels[name] = replace(label, profile=replace(label.profile, crl_urls=(str(crl.url),)))
    return labels


def build_ops(config: Config, state: State) -> OpsEndpoints:
    """The operational endpoints for `state`; the CRL is brought up to date now.

    Raises:
        ConfigError: as `build_crl_publisher` and `build_ocsp`.
    """
    health = HealthCheck(
        state.ca,
        state.ledger,
        state.users,
        more_cas={name: ca for name, ca in state.cas.items() if name != DEFAULT_CA},
        expiry_warning_days={n: config.ca_config(n).expiry_warning_days for n in config.ca_names},
    )
    more_crls = crl_publishers(config, state)
    crl = more_crls.pop(config.crl.path, None)
    ops = OpsEndpoints(
        health, crl, crl_path=config.crl.path, more_crls=more_crls, ocsp=build_ocsp(config, state)
    )
    ops.refresh_crl()
    return ops


def build_ocsp(config: Config, state: State) -> OcspEndpoint | None:
    """The OCSP responder `[ocsp]` describes, or None when it is off.

    It answers for every CA of the state (the CertID's issuer hashes pick one; another issuer
    is `unauthorized`), and for the old root of a rollover in progress, whose certificates are
    still valid. The delegated signer is issued by `[ca]` and signs for it alone; while `[ca]`
    rolls over, each root signs its own answers (the signer was issued by one of the two).

    Raises:
        ConfigError: `[ocsp] signer = delegated` and the signer cannot be used.
    """
    cfg = config.ocsp
    if not cfg.enabled:
        return None
    rolling = state.rollovers.get(DEFAULT_CA)
    authorities = [
        OcspAuthority(
            ca, load_ocsp_signer(config, ca) if name == DEFAULT_CA and rolling is None else None
        )
        for name, ca in all_cas(state).items()
    ]
    authorities += [OcspAuthority(rollover.old) for rollover in state.rollovers.values()]
    responder = OcspResponder(
        authorities, state.ledger, validity=timedelta(minutes=cfg.validity_minutes)
    )
    return OcspEndpoint(responder, path=cfg.path)


def build_ocsp_server(
    config: Config, server: EstServer, *, listener: Listener | None = None
) -> EstServer | None:
    """The plain-HTTP OCSP listener `[ocsp] http_enabled` asks for, or None.

    It answers only the routes `server` tags "ocsp", through `server`'s current routing
    table, so a reload of `server` (new CA, new signer) reaches it too; every other path is
    404.

    Args:
        config: the configuration.
        server: the EST server whose OCSP route is served.
        listener: the listening socket bound at start-up; None binds `[ocsp] http_address`
            and `http_port`. A given socket is always served (a worker restarted after a
            reload that turned OCSP off answers 404 rather than leave it unanswered).

    Raises:
        OSError: the address cannot be bound.
    """
    cfg, limits = config.ocsp, config.server
    if listener is None and not (cfg.enabled and cfg.http_enabled):
        return None

    def ocsp_only(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        route = server.handler.resolve(request)
        if route.tag.operation != "ocsp":
            raise NotFound("only OCSP is served on this port")
        return route(request, peer)

    return EstServer(
        address=cfg.http_address,
        port=cfg.http_port,
        handshaker=PlainHandshaker(),
        handler=ocsp_only,
        max_connections=limits.max_connections,
        max_connections_per_address=limits.max_connections_per_address,
        backlog=limits.backlog,
        handshake_timeout=limits.handshake_timeout,
        request_timeout=limits.request_timeout,
        header_timeout=limits.header_timeout,
        max_body_bytes=limits.max_body_bytes,
        listener=listener,
    )


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
