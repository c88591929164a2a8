"""Shared fixtures: a whole python-est server (state, service, TLS, listener) on 127.0.0.1:0.

`est_server` is one server for a test module with the default profile plus a few labels;
`start_est_server(cfg_text)` starts a server with extra config for a single test. Both run the
same `build_server` that `python-est serve` runs.
"""

from __future__ import annotations

import configparser
import io
import logging
import os
import shutil
import ssl
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from python_est.app import build_server
from python_est.config import Config, load_config
from python_est.server import EstServer
from python_est.state import State, open_state

BASE_CFG = """\
[server]
address = 127.0.0.1
port = 0
state_dir = state
handshake_timeout = 5
request_timeout = 5
[ca]
key_type = ec-p256
[tls]
server_key_type = rsa-2048
"""


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

            path.write_bytes(certificate_pem(self.state.ca.root))
        return path

    def url(self, path: str) -> str:
        return f"https://127.0.0.1:{self.port}{path}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return context


def merge_config(base: str, extra: str) -> str:
    """`base` with the sections and keys of `extra` added or overriding."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    parser.read_string(base)
    parser.read_string(extra)  # later keys win; a repeated section header is fine across reads
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


@contextmanager
def running_server(root: Path, cfg_text: str = "") -> Iterator[RunningServer]:
    """Write a config under `root`, create state, start the server, stop it afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(BASE_CFG, cfg_text))
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


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """`python-est` commands configure the python_est logger; undo that after each test."""
    logger = logging.getLogger("python_est")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def start_est_server(tmp_path: Path) -> Iterator[Callable[[str], RunningServer]]:
    """Start a server with extra config text; stopped when the test ends."""
    with ExitStack() as stack:
        count = 0

        def start(cfg_text: str = "") -> RunningServer:
            nonlocal count
            count += 1
            return stack.enter_context(running_server(tmp_path / f"server{count}", cfg_text))

        yield start


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def captured_records(name: str, level: int) -> Iterator[list[logging.LogRecord]]:
    """Every record of logger `name` at `level` or above, whatever propagation and levels
    earlier tests or `python-est` commands left behind."""
    logger = logging.getLogger(name)
    handler, saved = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved)


def require_tool(name: str) -> str:
    """The path of an external tool; skip without it, but fail under CI=true."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{name} is required under CI=true (scripts/install-system-deps)")
        pytest.skip(f"{name} is not installed")
    return path
