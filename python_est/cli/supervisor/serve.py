"""`python-est serve`: load state, build the app (`python_est.app`), run until a signal."""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509

from python_est.app import build_app, build_server
from python_est.app.access import shared_ticket_keys
from python_est.app.metrics import ProcessMetrics
from python_est.app.ocsp import build_ocsp_server
from python_est.cli.banner import banner_lines, program_command
from python_est.cli.logs import setup_logging
from python_est.cli.supervisor.daemon import (
    ROTATE_CHECK,
    SIGNALS,
    Generation,
    Reloader,
    ServingProcess,
    config_loader,
    rotate_ticket_keys_of,
)
from python_est.cli.supervisor.signals import blocked
from python_est.cli.supervisor.workers import Supervisor
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.server import EstServer, Listener, bind_listener
from python_est.state import is_first_start, open_state, ticket_keys_path
from python_est.state.guards import init_command, missing_server_names
from python_est.ticketkeys.file import TicketKeyFile, rotate_ticket_keys

log = logging.getLogger("python_est")


def serve(config: Config, *, config_path: Path | None, debug: bool = False) -> int:
    """Run the server in the foreground until SIGTERM or SIGINT; returns the exit status.

    `[server] workers` > 1 pre-forks that many worker processes (`workers`); SIGHUP reloads
    (`daemon`).
    """
    # Bound before anything else, so that a busy port stops a first start before it creates
    # any state; the server (or, with workers, each worker's server) serves this socket.
    listener = _bind(config)
    try:
        ocsp_listener = _bind_ocsp(config)
    except ConfigError:
        listener.close()
        raise
    try:
        return _serve_on(listener, ocsp_listener, config, config_path, debug)
    finally:
        listener.close()
        if ocsp_listener is not None:
            ocsp_listener.close()


def _bind(config: Config) -> Listener:
    cfg = config.server
    try:
        return bind_listener(cfg.address, cfg.port, cfg.backlog)
    except OSError as exc:
        # Port in use, address not on this host, privileged port.
        raise ConfigError(
            config.source,
            "server",
            "port",
            f"cannot listen on {_address_text(cfg.address, cfg.port)}: {_os_reason(exc)}",
        ) from None


def _bind_ocsp(config: Config) -> Listener | None:
    cfg = config.ocsp
    if not (cfg.enabled and cfg.http_enabled):
        return None
    try:
        return bind_listener(cfg.http_address, cfg.http_port, config.server.backlog)
    except OSError as exc:
        raise ConfigError(
            config.source,
            "ocsp",
            "http_port",
            f"cannot listen on {_address_text(cfg.http_address, cfg.http_port)}: {_os_reason(exc)}",
        ) from None


def _serve_on(
    listener: Listener,
    ocsp_listener: Listener | None,
    config: Config,
    config_path: Path | None,
    debug: bool,
) -> int:
    workers = config.server.workers
    # The first start creates the state; later a missing piece stops start-up (exit 2).
    state = open_state(config, create=is_first_start(config))
    for item in state.created:
        log.info("created %s", item)
    missing = missing_server_names(config, state.server.chain[0])
    if missing:
        remedy = (
            "replace the certificate in [tls] cert_file"
            if config.tls.cert_file is not None
            else f"reissue it with `{init_command(config)} --server-cert`"
        )
        log.warning(
            "the server certificate lacks %s of [server] server_names: clients using that "
            "name will refuse the server; %s",
            ", ".join(missing),
            remedy,
        )
    keys_path = ticket_keys_path(config)
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
                config,
                state,
                listener=listener,
                ticket_keys=reloader.ticket_keys,
                metrics=meter.metrics,
            )
    except ValueError as exc:
        raise ConfigError(config.source, "tls", None, str(exc)) from None
    if workers > 1:
        state.close()  # each worker opens its own: connections must not cross a fork
        return _supervise(
            listener, ocsp_listener, config, config_path, reloader, meter, state.ca.root
        )
    _announce(config, config_path, server.server_address, "", state.ca.root)
    generation = Generation(config, state, server.handshaker, server.handler)
    try:
        with _ocsp_listening(config, server, ocsp_listener):
            return ServingProcess(server, generation, reloader).run()
    finally:
        meter.close()


@contextmanager
def _ocsp_listening(config: Config, server: EstServer, listener: Listener | None) -> Iterator[None]:
    # The plain-HTTP OCSP listener (bound at start-up, `_bind_ocsp`) runs beside `server` and
    # answers through its routes.
    ocsp_server = None if listener is None else build_ocsp_server(config, server, listener=listener)
    if ocsp_server is None:
        yield
        return
    with blocked(SIGNALS):  # serving threads never take the process's signals
        ocsp_server.start_in_thread()
    host, port = ocsp_server.server_address
    log.info("OCSP over plain HTTP on %s", _address_text(host, port))
    try:
        yield
    finally:
        ocsp_server.shutdown(config.server.shutdown_grace)


def _supervise(
    listener: Listener,
    ocsp_listener: Listener | None,
    config: Config,
    config_path: Path | None,
    reloader: Reloader,
    meter: ProcessMetrics,
    root: x509.Certificate,
) -> int:
    cfg = config.server
    host, port = listener.getsockname()[:2]
    _announce(config, config_path, (str(host), int(port)), f" with {cfg.workers} workers", root)
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
            with _ocsp_listening(current, server, ocsp_listener):
                return ServingProcess(
                    server, generation, reloader, main=False, parent=main_pid
                ).run()
        finally:
            meter.close()

    def reload() -> bool:
        nonlocal current
        rotate_ticket_keys_of(current)
        checked = reloader.next(None, current, announce=True)
        if checked is None:
            return False
        checked.state.close()
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
    return supervisor.run()


def _announce(
    config: Config,
    config_path: Path | None,
    address: tuple[str, int],
    extra: str,
    root: x509.Certificate,
) -> None:
    lines = [f"listening on {address[0]}:{address[1]}{extra}; state in {config.server.state_dir}"]
    program = program_command(sys.argv[0], sys.executable)
    lines += banner_lines(config, config_path, address, root, program)
    print("".join(f"python-est: {line}\n" for line in lines), end="", flush=True)


def _address_text(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _os_reason(exc: OSError) -> str:
    # socket.create_server appends the address to strerror; the errno text alone is enough.
    return os.strerror(exc.errno) if exc.errno else str(exc)
