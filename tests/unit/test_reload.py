"""What a reload takes, keeps and refuses (`cli.supervisor.daemon`), and the signal inbox."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from python_est.app import build_app
from python_est.cli.supervisor.daemon import (
    Generation,
    Reloader,
    config_loader,
    keep_restart_only,
    restart_only_changes,
)
from python_est.cli.supervisor.signals import SignalInbox
from python_est.config import Config, load_config
from python_est.errors import LedgerError
from python_est.state import State, open_state, ticket_keys_path
from python_est.ticketkeys.file import TicketKeyFile

BASE = "[server]\nstate_dir = state\nport = 8443\n[ca]\nkey_type = ec-p256\n"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def logged() -> Iterator[list[str]]:
    logger = logging.getLogger("python_est")
    handler = Capture()
    handler.setLevel(logging.WARNING)  # build_app's own info lines (CRL) are not the point
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Path, Config, State]]:
    path = tmp_path / "est.cfg"
    path.write_text(BASE)
    config = load_config(path)
    with open_state(config, create=True) as state:
        yield path, config, state


def reloader(path: Path, config: Config) -> Reloader:
    keys = TicketKeyFile(ticket_keys_path(config))
    return Reloader(
        config_loader(path), build_app, debug=False, pid_in_logs=False, ticket_keys=keys
    )


def test_restart_only_settings_are_named_and_kept(tmp_path: Path) -> None:
    running = load_config(_write(tmp_path, BASE))
    new = load_config(_write(tmp_path, BASE.replace("8443", "9443\nworkers = 3")))
    new = replace(new, server=replace(new.server, request_timeout=7.0))
    assert restart_only_changes(running, new) == ["[server] port", "[server] workers"]
    kept = keep_restart_only(running, new)
    assert (kept.server.port, kept.server.workers) == (8443, 1)
    assert kept.server.request_timeout == 7.0  # everything else is taken
    assert restart_only_changes(running, kept) == []


def test_the_plain_ocsp_listener_settings_are_restart_only(tmp_path: Path) -> None:
    running = load_config(_write(tmp_path, BASE + "\n[ocsp]\nhttp_enabled = yes\n"))
    new = load_config(_write(tmp_path, BASE + "\n[ocsp]\nhttp_port = 9090\nvalidity_minutes = 5\n"))
    assert restart_only_changes(running, new) == ["[ocsp] http_enabled", "[ocsp] http_port"]
    kept = keep_restart_only(running, new)
    assert (kept.ocsp.http_enabled, kept.ocsp.http_port) == (True, 8080)
    assert kept.ocsp.validity_minutes == 5  # everything else is taken
    assert restart_only_changes(running, kept) == []


def test_reload_takes_the_new_config_and_keeps_the_open_ledger(
    running: tuple[Path, Config, State], logged: list[str]
) -> None:
    path, config, state = running
    handshaker, handler = build_app(config, state)
    current = Generation(config, state, handshaker, handler)
    path.write_text(BASE.replace("8443", "9443\nrequest_timeout = 7") + "[label:iot]\n")
    new = reloader(path, config).next(current, config, announce=True)
    assert new is not None
    assert new.state.ledger is state.ledger
    assert set(new.config.labels) == {"", "iot"}
    assert (new.config.server.port, new.config.server.request_timeout) == (8443, 7.0)
    assert new.handshaker is not handshaker and new.handler is not handler
    assert logged == [
        "WARNING [server] port changed: restart to apply it; keeping the running value"
    ]


def test_a_state_closes_what_it_opened(running: tuple[Path, Config, State]) -> None:
    _, config, _ = running
    with open_state(config, create=False) as state:
        assert state.ledger.count() == 0
    with pytest.raises(LedgerError):
        state.ledger.count()  # closed on leaving the block


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (BASE + "[bogus]\n", "[bogus]: unknown section"),
        (BASE + "[tls]\ncert_file = a.pem\nkey_file = a.key\n", "[tls] cert_file"),
        (BASE + "[profile]\ncsrattrs = notAnOid=\n", "[profile] csrattrs"),
    ],
)
def test_a_bad_reload_is_refused_with_one_line(
    running: tuple[Path, Config, State], logged: list[str], text: str, problem: str
) -> None:
    path, config, _ = running
    path.write_text(text)
    assert reloader(path, config).next(None, config, announce=True) is None
    [line] = logged
    assert line.startswith("ERROR reload refused; still serving the previous configuration: ")
    assert problem in line


def test_signal_inbox_reports_each_signal_once() -> None:
    inbox = SignalInbox({signal.SIGHUP, signal.SIGUSR1})
    try:
        assert inbox.wait(0) == []
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGUSR1)
        assert sorted(inbox.wait(1.0)) == sorted([signal.SIGHUP, signal.SIGUSR1])
        assert inbox.wait(0) == []
    finally:
        inbox.close()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "other.cfg"
    path.write_text(text)
    return path
