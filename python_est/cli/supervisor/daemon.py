"""One serving process: SIGHUP reloads, SIGTERM and SIGINT stop gracefully.

The main thread waits for signals (`signals`); the server's threads never see them.

Reload (SIGHUP) re-reads the config file, then loads a new generation: the CA, the TLS
certificate and key, the client trust anchors, the user store, and the service and TLS endpoint
built on them. Only when all of that succeeded does the server take it, in one swap, for new
connections; connections in flight finish with the generation they started with. A bad new
config, a missing file or an unusable key is refused with one log line, and the running
generation keeps serving. Settings tied to the listening socket, the worker pool or the open
ledger need a restart: a reload names them in a warning and keeps their running values. The
failed-login counters start afresh with each generation.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from python_est.cli.logs import setup_logging
from python_est.cli.supervisor import sdnotify
from python_est.cli.supervisor.signals import RELOAD, STOP, SignalInbox, blocked, unblock
from python_est.config import Config, default_config, load_config
from python_est.errors import ConfigError
from python_est.routes import Handler
from python_est.server import EstServer, Handshaker
from python_est.state import State, open_state, ticket_keys_path
from python_est.ticketkeys.file import TicketKeyFile, rotate_ticket_keys
from python_est.tls import TicketKeys

log = logging.getLogger("python_est")

SIGNALS = STOP | {RELOAD}
# Settings a running process keeps until restarted: they shape the socket, the pool, the ledger.
RESTART_ONLY = (
    ("server", "address"),
    ("server", "port"),
    ("server", "backlog"),
    ("server", "max_connections"),
    ("server", "max_connections_per_address"),
    ("server", "workers"),
    ("ledger", "path"),
    ("ocsp", "http_enabled"),
    ("ocsp", "http_address"),
    ("ocsp", "http_port"),
)
ROTATE_CHECK = 60.0  # seconds between checks of the session-ticket key age
_TICK = 1.0  # seconds between housekeeping checks in the signal loop

Builder = Callable[[Config, State, "TicketKeys | None"], tuple[Handshaker, Handler]]
ConfigLoader = Callable[[], Config]


@dataclass
class Generation:
    """A loaded configuration and everything built from it."""

    config: Config
    state: State
    handshaker: Handshaker
    handler: Handler


def config_loader(config_path: Path | None) -> ConfigLoader:
    """Re-reads the same source on every call: the file, or the embedded defaults."""
    if config_path is None:
        base = Path.cwd()
        return lambda: default_config(base)
    return lambda: load_config(config_path)


def rotate_ticket_keys_of(config: Config) -> None:
    """Rotate the session-ticket key file of `config`'s state directory if it is due."""
    try:
        rotate_ticket_keys(ticket_keys_path(config))
    except ConfigError as exc:
        log.warning("session-ticket keys not rotated: %s", exc)


def restart_only_changes(running: Config, new: Config) -> list[str]:
    """ "[section] key" for each restart-only setting that differs between the two configs."""
    return [
        f"[{section}] {key}"
        for section, key in RESTART_ONLY
        if getattr(getattr(running, section), key) != getattr(getattr(new, section), key)
    ]


def keep_restart_only(running: Config, new: Config) -> Config:
    """`new` with the restart-only settings of `running`."""
    kept = {
        key: getattr(running.server, key) for section, key in RESTART_ONLY if section == "server"
    }
    server = replace(new.server, **kept)
    ledger = replace(new.ledger, path=running.ledger.path)
    ocsp = replace(
        new.ocsp,
        http_enabled=running.ocsp.http_enabled,
        http_address=running.ocsp.http_address,
        http_port=running.ocsp.http_port,
    )
    return replace(new, server=server, ledger=ledger, ocsp=ocsp)


class Reloader:
    """Loads generations for one process.

    Args:
        load: reads the configuration.
        build: makes the TLS endpoint and request handler from a config and its state.
        debug: `-d` was given: debug logging whatever the config says.
        pid_in_logs: several processes share stderr (worker mode).
        ticket_keys: the session-ticket keys (a `TicketKeyFile` of the running state directory,
            or keys shared through a database).
    """

    def __init__(
        self,
        load: ConfigLoader,
        build: Builder,
        *,
        debug: bool,
        pid_in_logs: bool,
        ticket_keys: TicketKeys,
    ) -> None:
        self._load = load
        self._build = build
        self._debug = debug
        self._pid_in_logs = pid_in_logs
        self.ticket_keys = ticket_keys

    def next(
        self, running: Generation | None, config: Config, *, announce: bool
    ) -> Generation | None:
        """Load the next generation, or log why not and return None.

        Args:
            running: the generation serving now; the new state takes over its open ledger.
                None in the main process of worker mode, which only checks that the workers
                will accept the reload (the caller then closes the returned generation's state).
            config: the running configuration (restart-only settings are compared with it).
            announce: log the restart-only settings that changed (once, not in every worker).
        """
        try:
            new = self._load()
        except ConfigError as exc:
            return _refused(exc)
        if announce:
            for name in restart_only_changes(config, new):
                log.warning("%s changed: restart to apply it; keeping the running value", name)
        new = keep_restart_only(config, new)
        try:
            # The same ledger file (a restart-only setting): keep its connection.
            ledger = None if running is None else running.state.ledger
            state = open_state(new, create=False, ledger=ledger)
        except ConfigError as exc:
            return _refused(exc)
        keys = self.ticket_keys
        if isinstance(keys, TicketKeyFile) and new.server.state_dir != config.server.state_dir:
            keys = TicketKeyFile(ticket_keys_path(new))
        try:
            handshaker, handler = self._build(new, state, keys)
        except (ConfigError, ValueError) as exc:
            if running is None:
                state.close()
            return _refused(exc)
        self.ticket_keys = keys
        for warning in new.warnings:
            log.warning("%s", warning)
        leaf = state.server.chain[0]
        log.debug(
            "loaded: server certificate %s (serial %X, until %s), CA %s, %d client trust "
            "anchor(s), %d label(s)",
            leaf.subject.rfc4514_string(),
            leaf.serial_number,
            leaf.not_valid_after_utc.date(),
            state.ca.certificate.subject.rfc4514_string(),
            len(state.client_trust_anchors),
            len(new.labels),
        )
        if new.logging != config.logging:
            level = "debug" if self._debug else new.logging.level
            setup_logging(level, new.logging.format, pid=self._pid_in_logs)
        return Generation(new, state, handshaker, handler)


def _refused(exc: Exception) -> Generation | None:
    log.error("reload refused; still serving the previous configuration: %s", exc)
    return None


class ServingProcess:
    """Runs an `EstServer` in a thread and answers signals in the calling (main) thread.

    Args:
        server: the server, built from `generation`.
        generation: what the server runs on now.
        reloader: loads the next generation on SIGHUP.
        main: this is the main process (it notifies systemd, rotates ticket keys and announces
            restart-only changes); False in a worker process.
        parent: in a worker, the main process's pid: when it is gone, the worker stops.
    """

    def __init__(
        self,
        server: EstServer,
        generation: Generation,
        reloader: Reloader,
        *,
        main: bool = True,
        parent: int | None = None,
    ) -> None:
        self.server = server
        self.generation = generation
        self._reloader = reloader
        self._main = main
        self._parent = parent
        self._rotated = time.monotonic()

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT (or the main process goes away); returns the status."""
        inbox = SignalInbox(SIGNALS)
        try:
            with blocked(SIGNALS):
                thread = self.server.start_in_thread()  # its threads inherit the blocked mask
            unblock(SIGNALS)  # a forked worker starts with them blocked (see workers)
            if self._main:
                sdnotify.ready("serving")
            status = self._loop(inbox, thread)
            self.stop(thread)
        finally:
            inbox.close()
        return status

    def _loop(self, inbox: SignalInbox, thread: threading.Thread) -> int:
        while True:
            received = inbox.wait(_TICK)
            stop = next((s for s in received if s in STOP), None)
            if stop is not None:
                log.info("received %s; stopping", signal.Signals(stop).name)
                return 0
            if RELOAD in received:
                self.reload()
            if not thread.is_alive():
                log.error("the accept loop ended unexpectedly")
                return 1
            if self._parent is not None and os.getppid() != self._parent:
                log.warning("the main process is gone; stopping")
                return 0
            self._housekeeping()

    def reload(self) -> bool:
        """Load and swap in the next generation; False (and logged) when refused."""
        if self._main:
            log.info("reloading the configuration")
            sdnotify.reloading()
            rotate_ticket_keys_of(self.generation.config)
        current = self.generation
        new = self._reloader.next(current, current.config, announce=self._main)
        if new is not None:
            self.server.replace_app(new.handshaker, new.handler)
            cfg = new.config.server
            self.server.handshake_timeout = cfg.handshake_timeout
            self.server.request_timeout = cfg.request_timeout
            self.server.header_timeout = cfg.header_timeout
            self.server.max_body_bytes = cfg.max_body_bytes
            self.server.set_proxy_protocol(cfg.proxy_protocol, cfg.trusted_proxies)
            self.generation = new
            log.info("reloaded the configuration from %s", new.config.source)
        if self._main:
            sdnotify.ready("serving" if new is not None else "serving; last reload refused")
        return new is not None

    def stop(self, thread: threading.Thread) -> None:
        """Stop accepting, let connections finish for up to `shutdown_grace` s, close the state."""
        if self._main:
            sdnotify.stopping()
        self.server.request_stop(self.generation.config.server.shutdown_grace)
        thread.join()
        self.generation.state.close()
        log.info("stopped")

    def _housekeeping(self) -> None:
        if self._main and time.monotonic() - self._rotated >= ROTATE_CHECK:
            self._rotated = time.monotonic()
            rotate_ticket_keys_of(self.generation.config)
