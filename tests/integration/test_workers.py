"""`[server] workers = 2`: two processes on one port, one ledger, shared session-ticket keys.

Concurrent enrollments all succeed with unique serials and are served by both workers; a worker
killed with SIGKILL is replaced; SIGHUP and SIGTERM reach every worker; a TLS session ticket made
by one worker resumes on the other.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from est_harness import (
    Daemon,
    basic,
    build_request,
    csr_body,
    daemon,
    https,
    make_csr,
    prepare_state,
)
from python_est.config import load_config
from python_est.ledger import SqliteLedger

pytestmark = pytest.mark.integration

EXTRA = """\
[server]
workers = 2
shutdown_grace = 5
[profile]
password_subjects = any
"""
PASSWORD = "a password for many workers"
WORKER_STARTED = r"worker (\d) started \(pid (\d+)\)"
# python_est.server[PID]: ADDRESS TLS1.2 SUITE [resumed] auth=... "METHOD PATH" STATUS
SERVED = re.compile(
    r"python_est\.server\[(\d+)\]: 127\.0\.0\.1 TLS1\.2 (\S+)( resumed)? .* (\d{3}) "
)


def enroll(running: Daemon, name: str) -> int:
    csr, _ = make_csr(name)
    request = build_request(
        "POST",
        "/.well-known/est/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10", "Authorization": basic("fleet", PASSWORD)},
        running.port,
    )
    reply = https(running.port, request, cafile=running.root / "state" / "ca" / "ca.pem")
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert.serial_number


def enroll_many(running: Daemon, prefix: str, count: int) -> list[int]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda i: enroll(running, f"{prefix}-{i}"), range(count)))


def served_by(running: Daemon) -> list[tuple[int, bool]]:
    """(pid, resumed) of every connection logged so far that got a response."""
    found = []
    for line in running.log().splitlines():
        match = SERVED.search(line)
        if match:
            found.append((int(match.group(1)), match.group(3) is not None))
    return found


def wait_until_stopped(pid: int) -> None:
    """kill() returns before the target stops; until every thread has, it may still accept."""
    deadline = time.monotonic() + 10
    while True:
        states = [
            stat.read_text().rsplit(")", 1)[1].split()[0]
            for stat in Path(f"/proc/{pid}/task").glob("*/stat")
        ]
        if states and all(state in "Tt" for state in states):
            return
        assert time.monotonic() < deadline, f"worker {pid} did not stop: {states}"
        time.sleep(0.01)


def worker_pids(running: Daemon) -> dict[int, int]:
    """Worker index -> pid of its latest start."""
    return {int(i): int(pid) for i, pid in re.findall(WORKER_STARTED, running.log())}


def test_two_workers_share_the_port_the_ledger_and_the_signals(tmp_path: Path) -> None:
    prepare_state(tmp_path, EXTRA, {"fleet": PASSWORD})
    with daemon(tmp_path, EXTRA) as running:
        running.wait_for(WORKER_STARTED, count=2)
        assert running.notify is not None
        assert running.notify.wait_for("READY=1") == "READY=1\nSTATUS=serving with 2 workers"
        workers = worker_pids(running)
        assert sorted(workers) == [1, 2]

        serials = enroll_many(running, "first", 24)
        assert len(set(serials)) == 24
        running.wait_for(SERVED.pattern, count=24)  # each is logged just after its response
        # Both workers serve the one socket. Which one accepts a connection is the scheduler's
        # choice (a worker still opening its state takes none), so each shows it alone: with
        # the other stopped, a connection can only go to it.
        for index, pid in workers.items():
            other = workers[3 - index]
            os.kill(other, signal.SIGSTOP)
            try:
                wait_until_stopped(other)
                serials.append(enroll(running, f"alone-{index}"))
                running.wait_for(SERVED.pattern, count=24 + index)
            finally:
                os.kill(other, signal.SIGCONT)
            assert served_by(running)[24 + index - 1][0] == pid

        # A worker killed outright is replaced, and the service goes on.
        os.kill(workers[1], signal.SIGKILL)
        running.wait_for(rf"worker 1 \(pid {workers[1]}\) was killed by SIGKILL; restarting")
        running.wait_for(WORKER_STARTED, count=3)
        replaced = worker_pids(running)
        assert replaced[1] != workers[1] and replaced[2] == workers[2]
        serials += enroll_many(running, "second", 8)
        assert len(set(serials)) == 34

        # SIGHUP: checked once by the main process, then applied by every worker.
        running.send(signal.SIGHUP)
        running.notify.wait_for("RELOADING=1")
        reloaded = running.wait_for(r"reloaded the configuration from ", count=2)
        assert {int(re.findall(r"\[(\d+)\]", line)[0]) for line in reloaded} == set(
            replaced.values()
        )

        assert running.stop() == 0
        running.wait_for(r"all workers stopped")
        stopped = running.wait_for(r"python_est\[\d+\]: stopped$", count=2)
        assert len(stopped) == 2

    ledger = SqliteLedger(load_config(running.config).ledger.path)
    try:
        assert {e.serial for e in ledger.list_certificates(limit=100)} == set(serials)
    finally:
        ledger.close()


def test_a_session_ticket_resumes_on_the_other_worker(tmp_path: Path) -> None:
    with daemon(tmp_path, EXTRA, notify=False) as running:
        running.wait_for(WORKER_STARTED, count=2)

        contexts = {}
        for tickets in (True, False):
            context = ssl.create_default_context(cafile=str(tmp_path / "state" / "ca" / "ca.pem"))
            context.maximum_version = ssl.TLSVersion.TLSv1_2
            if not tickets:
                context.options |= ssl.OP_NO_TICKET
            contexts[tickets] = context

        def connect(
            session: ssl.SSLSession | None, *, tickets: bool = True
        ) -> tuple[ssl.SSLSession, bool, int]:
            """One request; the session, whether it was resumed, and the worker that served."""
            context = contexts[tickets]
            done = len(served_by(running))
            with socket.create_connection(("127.0.0.1", running.port), timeout=10) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
                    tls.sendall(build_request("GET", "/.well-known/est/cacerts", port=1))
                    while tls.recv(65536):
                        pass
                    assert tls.session is not None
                    result = tls.session, bool(tls.session_reused)
            running.wait_for(SERVED.pattern, count=done + 1)
            return *result, served_by(running)[done][0]

        def resume_elsewhere(session: ssl.SSLSession, origin: int, *, tickets: bool) -> bool:
            # A stopped worker accepts nothing: the connection goes to the other one.
            os.kill(origin, signal.SIGSTOP)
            try:
                wait_until_stopped(origin)
                _, reused, pid = connect(session, tickets=tickets)
            finally:
                os.kill(origin, signal.SIGCONT)
            assert pid != origin
            return reused

        session, reused, origin = connect(None)
        assert not reused and session.has_ticket
        assert resume_elsewhere(session, origin, tickets=True)
        # Without a ticket only the session-ID cache is left, and it is per process.
        session, reused, origin = connect(None, tickets=False)
        assert not reused and not session.has_ticket
        assert not resume_elsewhere(session, origin, tickets=False)
