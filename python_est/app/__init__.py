"""The composition root: config → state → service → routes → server, built in one place.

Everything a connection needs is built here, at start-up and on every reload (SIGHUP), in
every serving process, so that a reload swaps all of it at once. The CLI (`serve`, the daemon
and the workers), the tests and the benchmarks build servers through this module only.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from python_est.app.access import device_registry, failure_limiter
from python_est.app.backends import build_backends
from python_est.app.crl import crl_publishers, issuing_labels
from python_est.app.ocsp import build_ocsp
from python_est.app.trust import all_cas, label_anchors, manufacturer_trust, server_chain
from python_est.bootstrap import BootstrapPage, derive_form_secret
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.errors import ConfigError
from python_est.keks import KekStore
from python_est.ledger import IssuedCertificate
from python_est.ops import ConnectionMetrics, HealthCheck, OpsEndpoints
from python_est.ops.metrics import Metrics
from python_est.policy import ClientChainValidator
from python_est.routes import RoutingTable, est_resolver
from python_est.server import EstServer, Handshaker, Listener
from python_est.server.courier import build_webhooks
from python_est.service import EstService, LabelError, check_label, signer_from
from python_est.state import State
from python_est.state.device_srp import DeviceSrpVerifiers
from python_est.state.manufacturers import load_manufacturers
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


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


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
