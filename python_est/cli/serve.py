"""`python-est serve`: load state, build the service and TLS endpoint, run until a signal."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType

from python_est import wire
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.policy import ClientChainValidator
from python_est.ratelimit import FailureLimiter
from python_est.server import EstServer
from python_est.service import EstService
from python_est.state import State, open_state
from python_est.tls import TlsEndpoint

log = logging.getLogger("python_est")


def check_csrattrs(config: Config) -> None:
    """Parse every label's `csrattrs` now, so a typo stops start-up with the key named."""
    for name, label in config.labels.items():
        try:
            wire.parse_csrattrs_spec(label.csrattrs)
        except ValueError as exc:
            section = f"label:{name}" if name else "profile"
            raise ConfigError(config.source, section, "csrattrs", str(exc)) from None


def build_server(config: Config, state: State) -> EstServer:
    """Wire the loaded state into a ready-to-run `EstServer` (used by serve and by tests)."""
    check_csrattrs(config)
    limiter = FailureLimiter(
        config.auth.max_failures, config.auth.failure_window, config.auth.lockout
    )
    service = EstService(
        labels=config.labels,
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=limiter,
        realm=config.auth.realm,
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
    )
    return EstServer(
        address=config.server.address,
        port=config.server.port,
        handshaker=endpoint,
        handler=service.handle,
        max_connections=config.server.max_connections,
        backlog=config.server.backlog,
        handshake_timeout=config.server.handshake_timeout,
        request_timeout=config.server.request_timeout,
        max_body_bytes=config.server.max_body_bytes,
    )


def serve(config: Config, *, config_path: Path | None) -> int:
    """Run the server in the foreground until SIGTERM or SIGINT; returns the exit status."""
    state = open_state(config, create=True)
    for item in state.created:
        log.info("created %s", item)
    server = build_server(config, state)
    host, port = server.server_address[:2]
    cfg_arg = f"-c {config_path} " if config_path else ""
    print(
        f"python-est: listening on {host}:{port}; state in {config.server.state_dir}; "
        f"add a user with: python-est {cfg_arg}user add NAME",
        flush=True,
    )

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        # shutdown() waits for serve_forever to return, so it cannot run on the serving thread.
        threading.Thread(target=server.shutdown, name="shutdown", daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever()
    finally:
        state.ledger.close()
    log.info("stopped")
    return 0
