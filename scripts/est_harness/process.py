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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from est_harness.config import MAIN, ROOT, TEST_CFG, write_config

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


def poll(
    condition: str, check: Callable[[], object], *, timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Wait until `check()` is true; fail naming `condition` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {condition}")
        time.sleep(interval)


class Daemon:
    """`python main.py -c CONFIG [ARGS]` as a child process in its own session.

    `start()` waits until it listens; `close()` (or leaving the `with` block) kills whatever is
    left of its session. Its stdout and stderr are `logs/stdout.log` and `logs/stderr.log`
    (`logs` defaults to the config's directory).
    """

    def __init__(
        self,
        config: Path,
        *,
        args: tuple[str, ...] = (),
        notify: bool = False,
        logs: Path | None = None,
    ) -> None:
        self.config = config
        self.args = args
        self.root = logs or config.parent
        self.root.mkdir(parents=True, exist_ok=True)
        self.out = self.root / "stdout.log"
        self.err = self.root / "stderr.log"
        self.notify = NotifySocket() if notify else None
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        assert self._proc is not None, "the daemon was not started"
        return self._proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Daemon:
        """Start the process and wait for its "listening on 127.0.0.1:PORT" line."""
        # Never a real systemd's: only our NotifySocket, when asked for.
        env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "JOURNAL_STREAM")}
        if self.notify is not None:
            env["NOTIFY_SOCKET"] = self.notify.name
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self._proc = subprocess.Popen(
                [sys.executable, str(MAIN), "-c", str(self.config), *self.args],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (match := LISTENING.search(self.out.read_text(errors="replace"))):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(
                    f"daemon did not start (exit {self._proc.poll()}):\n{self.log()}"
                )
            time.sleep(0.05)
        self.port = int(match.group(1))
        return self

    def log(self) -> str:
        """stderr so far: the log."""
        return self.err.read_text(errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

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

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL to the whole server at once, as a power cut would: the main process and
        every worker (the workers are forked into its process group). No shutdown code runs.
        Returns once none of them runs any more."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        poll(f"every process of group {self.proc.pid} to die", lambda: not _group_alive(self.pid))

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then the exit status (SIGKILL after `timeout` seconds: then -9)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)

    def close(self) -> None:
        """Kill whatever is left of the session (the daemon, its workers), close the socket."""
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the session is gone: every process in it has ended
            self._proc.wait(10)
        if self.notify is not None:
            self.notify.close()

    def __enter__(self) -> Daemon:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rss_kib(self) -> int:
        return _status_field(self.pid, "VmRSS")

    def threads(self) -> int:
        return _status_field(self.pid, "Threads")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


def _group_alive(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs (zombies, already dead, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended while we looked
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _status_field(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise KeyError(name)


@contextmanager
def daemon(
    root: Path, extra: str = "", *, args: tuple[str, ...] = (), notify: bool = True
) -> Iterator[Daemon]:
    """Write the test config under `root`, start the daemon on it, kill it at the end."""
    with Daemon(write_config(root, extra, base=TEST_CFG), args=args, notify=notify) as running:
        yield running


def run_cli(
    config: Path, *args: str, stdin: str = "", timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `python main.py -c CONFIG ARGS...` to completion (text output)."""
    return subprocess.run(
        [sys.executable, str(MAIN), "-c", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def init_state(config: Path, users: dict[str, str]) -> None:
    """`init`, then `user add` for each name and password, through the CLI; raises on failure."""
    for args, stdin in [(("init",), "")] + [
        (("user", "add", name, "--password-stdin"), password + "\n")
        for name, password in users.items()
    ]:
        done = run_cli(config, *args, stdin=stdin, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"python-est {' '.join(args)} failed: {done.stderr.strip()}")


def prepare_state(root: Path, extra: str = "", users: dict[str, str] | None = None) -> Path:
    """Write the test config and create the state (CA, ledger, user store with `users`) in
    this process, faster than `init_state`."""
    # Imported here: the package is not needed to drive a daemon, only to prepare one.
    from python_est.config import load_config
    from python_est.state import open_state

    config = write_config(root, extra, base=TEST_CFG)
    state = open_state(load_config(config), create=True)
    for name, password in (users or {}).items():
        assert state.users is not None
        state.users.add(name, password)
    state.ledger.close()
    return config


def ledger_serials(ledger_path: Path) -> list[int]:
    """Every serial in the ledger, read-only (safe while the server runs)."""
    from python_est.ledger import SqliteLedger

    with SqliteLedger(ledger_path, read_only=True) as ledger:
        serials: list[int] = []
        while page := ledger.list_certificates(limit=1000, offset=len(serials)):
            serials += [entry.serial for entry in page]
        return serials
