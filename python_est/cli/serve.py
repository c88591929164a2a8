"""`python-est serve`: load state, build the service and TLS endpoint, run until a signal."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from python_est.bootstrap import BootstrapPage, derive_form_secret, route
from python_est.cli.daemon import (
    ROTATE_CHECK,
    Generation,
    Reloader,
    ServingProcess,
    config_loader,
    rotate_ticket_keys_of,
)
from python_est.cli.logs import setup_logging
from python_est.cli.ticketkeys import TicketKeyFile, rotate_ticket_keys, ticket_key_path
from python_est.cli.workers import Supervisor
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.metrics import Metrics
from python_est.ops import ProcessMetrics, build_ops, connection_metrics, counting_ledger
from python_est.policy import ClientChainValidator
from python_est.server import EstServer, Handler, Handshaker, Listener, bind_listener
from python_est.service import EstService, check_label
from python_est.state import (
    State,
    failure_limiter,
    is_first_start,
    open_state,
    shared_ticket_keys,
)
from python_est.tls import TicketKeys, TlsEndpoint

log = logging.getLogger("python_est")


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
) -> tuple[Handshaker, Handler]:
    """The TLS endpoint and request handler for `config` and `state`.

    Called at start-up and on every reload (SIGHUP), in every worker process: everything a
    connection needs is built here, so that a reload swaps all of it at once.

    Raises:
        ConfigError: a label's csrattrs cannot be parsed.
        ValueError: the TLS settings or the server key cannot be used.
    """
    check_csrattrs(config)
    limiter = failure_limiter(config, state)  # shared by the workers and `lockouts`
    service = EstService(
        labels=config.labels,
        ca=state.ca,
        ledger=state.ledger if metrics is None else counting_ledger(state.ledger, metrics),
        users=state.users,
        limiter=limiter,
        realm=config.auth.realm,
        pending_retry_after=config.server.pending_retry_after,
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
    handler = route(
        BootstrapPage(
            service,
            path=config.bootstrap.path,
            enabled=config.bootstrap.enabled,
            # Derived from the CA key, which every worker and every reload share, so a form
            # served by one process is accepted by any other.
            form_secret=derive_form_secret(state.ca.private_key),
        ),
        service.handle,
    )
    # /healthz and the CRL in front (python_est.ops); building it brings the CRL up to date.
    return endpoint, build_ops(config, state).route(handler)


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
        observer=None if metrics is None else connection_metrics(config, metrics),
    )


def serve(config: Config, *, config_path: Path | None, debug: bool = False) -> int:
    """Run the server in the foreground until SIGTERM or SIGINT; returns the exit status.

    `[server] workers` > 1 pre-forks that many worker processes (`python_est.cli.workers`);
    SIGHUP reloads (`python_est.cli.daemon`).
    """
    workers = config.server.workers
    # The first start creates the state; later a missing piece stops start-up (exit 2).
    state = open_state(config, create=is_first_start(config))
    for item in state.created:
        log.info("created %s", item)
    keys_path = ticket_key_path(config.server.state_dir)
    rotate_ticket_keys(keys_path)
    # -d forces debug logging; keep it through reloads.
    if workers > 1:
        setup_logging("debug" if debug else config.logging.level, config.logging.format, pid=True)
    meter = ProcessMetrics()  # started in the process that serves (after any fork)
    reloader = Reloader(
        config_loader(config_path),
        lambda cfg, st, keys: build_app(cfg, st, keys, metrics=meter.metrics),
        debug=debug,
        pid_in_logs=workers > 1,
        # With [ledger] url the keys come from the database, so every instance resumes them.
        ticket_keys=shared_ticket_keys(config, state) or TicketKeyFile(keys_path),
    )
    try:
        if workers > 1:
            # Checked once here, so that a bad config stops start-up instead of every worker.
            build_app(config, state, reloader.ticket_keys)
        else:
            meter.start(config)
            server = build_server(
                config, state, ticket_keys=reloader.ticket_keys, metrics=meter.metrics
            )
    except ValueError as exc:
        raise ConfigError(config.source, "tls", None, str(exc)) from None
    except OSError as exc:
        # bind(): port in use, address not on this host, privileged port.
        raise ConfigError(
            config.source, "server", "port", f"cannot listen: {_os_reason(exc)}"
        ) from None
    if workers > 1:
        state.ledger.close()  # each worker opens its own: SQLite connections must not cross fork
        return _supervise(config, config_path, reloader, meter)
    _announce(config, config_path, server.server_address, "")
    generation = Generation(config, state, server.handshaker, server.handler)
    try:
        return ServingProcess(server, generation, reloader).run()
    finally:
        meter.close()


def _supervise(
    config: Config, config_path: Path | None, reloader: Reloader, meter: ProcessMetrics
) -> int:
    cfg = config.server
    try:
        listener = bind_listener(cfg.address, cfg.port, cfg.backlog)
    except OSError as exc:
        raise ConfigError(
            config.source, "server", "port", f"cannot listen: {_os_reason(exc)}"
        ) from None
    host, port = listener.getsockname()[:2]
    _announce(config, config_path, (str(host), int(port)), f" with {cfg.workers} workers")
    main_pid = os.getpid()
    current = config

    def start(index: int) -> int:
        try:
            state = open_state(current, create=False)
            meter.start(current, port_offset=index - 1)  # workers 1..N: port, port + 1, ...
            server = build_server(
                current,
                state,
                listener=listener,
                ticket_keys=reloader.ticket_keys,
                metrics=meter.metrics,
            )
        except (ConfigError, ValueError) as exc:
            log.error("worker %d cannot start: %s", index, exc)
            return 2
        generation = Generation(current, state, server.handshaker, server.handler)
        try:
            return ServingProcess(server, generation, reloader, main=False, parent=main_pid).run()
        finally:
            meter.close()

    def reload() -> bool:
        nonlocal current
        rotate_ticket_keys_of(current)
        checked = reloader.next(None, current, announce=True)
        if checked is None:
            return False
        checked.state.ledger.close()
        current = checked.config  # workers started from now on get it too
        return True

    rotated = time.monotonic()

    def tick() -> None:
        nonlocal rotated
        if time.monotonic() - rotated >= ROTATE_CHECK:
            rotated = time.monotonic()
            rotate_ticket_keys_of(current)

    supervisor = Supervisor(
        cfg.workers, start, reload=reload, tick=tick, grace=lambda: current.server.shutdown_grace
    )
    try:
        return supervisor.run()
    finally:
        listener.close()


def _announce(
    config: Config, config_path: Path | None, address: tuple[str, int], extra: str
) -> None:
    cfg_arg = f"-c {config_path} " if config_path else ""
    print(
        f"python-est: listening on {address[0]}:{address[1]}{extra}; "
        f"state in {config.server.state_dir}; add a user with: python-est {cfg_arg}user add NAME",
        flush=True,
    )


def _os_reason(exc: OSError) -> str:
    # socket.create_server appends the address to strerror; the errno text alone is enough.
    return os.strerror(exc.errno) if exc.errno else str(exc)
