"""A whole python-est server (state, service, TLS, listener) on 127.0.0.1:0 in this process.

It runs the same `build_server` that `python-est serve` runs, in a thread.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from est_harness.config import TEST_CFG, merge_config
from python_est.app import build_server
from python_est.config import Config, load_config
from python_est.server import EstServer
from python_est.state import State, open_state


@dataclass
class RunningServer:
    """A started server and the paths a client needs."""

    server: EstServer
    config: Config
    state: State
    root: Path

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def ca_file(self) -> Path:
        """PEM of the root that signed the server certificate (the client trust anchor)."""
        path = self.root / "trust.pem"
        if not path.exists():
            from python_est.ca import certificate_pem
            from python_est.fileio import atomic_write

            # Atomic: several client threads of one test may ask for it at once, and none may
            # read a half-written file.
            atomic_write(path, certificate_pem(self.state.ca.root))
        return path

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return context


@contextmanager
def running_server(root: Path, cfg_text: str = "") -> Iterator[RunningServer]:
    """Write a config under `root`, create state, start the server, stop it afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, cfg_text))
    config = load_config(cfg)
    state = open_state(config, create=True)
    server = build_server(config, state)
    thread = server.start_in_thread()
    try:
        yield RunningServer(server=server, config=config, state=state, root=root)
    finally:
        server.shutdown(grace=2.0)
        thread.join(timeout=5)
        state.ledger.close()
