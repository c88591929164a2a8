"""Run `python main.py -c CFG` as a real process: its output, its signals, its sd_notify messages.

The daemon binds port 0 and prints `listening on 127.0.0.1:PORT`, which gives the port.
stdout and stderr go to files (no pipe can fill up and block the server); `wait_for` polls them.
Each daemon runs in its own session, so a test that fails mid-way still ends it and its workers.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import BASE_CFG, merge_config

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"
LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class NotifySocket:
    """An abstract AF_UNIX datagram socket standing in for systemd's `$NOTIFY_SOCKET`."""

    def __init__(self) -> None:
        self.name = f"@python-est-test-{uuid.uuid4().hex}"
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + self.name[1:])
        self.messages: list[str] = []

    def wait_for(self, prefix: str, timeout: float = 15.0) -> str:
        """The first message (received so far or within `timeout`) starting with `prefix`."""
        deadline = time.monotonic() + timeout
        while True:
            for message in self.messages:
                if message.startswith(prefix):
                    self.messages.remove(message)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no sd_notify message {prefix!r}; got {self.messages}")
            self._sock.settimeout(remaining)
            try:
                self.messages.append(self._sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self._sock.close()


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    root: Path
    config: Path
    port: int = 0
    notify: NotifySocket | None = None
    out: Path = field(init=False)
    err: Path = field(init=False)

    def __post_init__(self) -> None:
        self.out = self.root / "stdout.log"
        self.err = self.root / "stderr.log"

    def log(self) -> str:
        return self.err.read_text(errors="replace")

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.log()

    def wait_for(self, pattern: str, *, count: int = 1, timeout: float = 15.0) -> list[str]:
        """Wait until stderr has `count` lines matching the regex `pattern`; return them all."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            lines = [line for line in self.log().splitlines() if regex.search(line)]
            if len(lines) >= count:
                return lines
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{count} x {pattern!r} not logged (exit {self.proc.poll()}):\n{self.log()}"
                )
            time.sleep(0.05)

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def write_config(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    cfg = root / "est.cfg"
    cfg.write_text(merge_config(BASE_CFG, extra))
    return cfg


def run_cli(config: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run `python main.py -c CONFIG ARGS...` to completion."""
    return subprocess.run(
        [sys.executable, str(MAIN), "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        check=False,
    )


@contextmanager
def daemon(
    root: Path, extra: str = "", *, args: tuple[str, ...] = (), notify: bool = True
) -> Iterator[Daemon]:
    """Start `python main.py -c CFG [ARGS]` and wait until it listens; kill it at the end."""
    config = write_config(root, extra)
    sock = NotifySocket() if notify else None
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
    if sock is not None:
        env["NOTIFY_SOCKET"] = sock.name
    with (root / "stdout.log").open("wb") as out, (root / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(MAIN), "-c", str(config), *args],
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
    running = Daemon(proc, root, config, notify=sock)
    try:
        deadline = time.monotonic() + 30
        while not (match := LISTENING.search(running.out.read_text())):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"daemon did not start (exit {proc.poll()}):\n{running.log()}")
            time.sleep(0.05)
        running.port = int(match.group(1))
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        if sock is not None:
            sock.close()


def prepare_state(root: Path, extra: str = "", users: dict[str, str] | None = None) -> Path:
    """Write the config and create the state (CA, ledger, user store with `users`) up front."""
    # Imported here: the package is not needed to drive a daemon, only to prepare one.
    from python_est.config import load_config
    from python_est.state import open_state

    config = write_config(root, extra)
    state = open_state(load_config(config), create=True)
    for name, password in (users or {}).items():
        assert state.users is not None
        state.users.add(name, password)
    state.ledger.close()
    return config
