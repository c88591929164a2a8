"""Throwaway PostgreSQL clusters and HAProxy for the scale-out tests.

A cluster lives in a fresh temporary directory, listens on 127.0.0.1 on a free unprivileged port
(and a unix socket in that directory), trusts local connections and is stopped and deleted after
the tests. PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user
that Debian's package creates (or `PG_TEST_USER`). Without the binaries a test is skipped, but
under CI=true that skip fails the run (tests/conftest.py): `scripts/install-system-deps` installs
them.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool

SUPERUSER = "est"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:`port`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.05)


def postgres_bin() -> Path:
    """The directory of `initdb` and `pg_ctl`: on PATH, else Debian's versioned directory."""
    found = shutil.which("pg_ctl")
    if found is not None and shutil.which("initdb") is not None:
        return Path(found).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    return Path(require_tool("pg_ctl")).parent


@dataclass
class PgCluster:
    """A running PostgreSQL server in a temporary directory."""

    bin_dir: Path
    root: Path
    port: int
    run_as: str | None
    # fsync, synchronous_commit and full_page_writes on (PostgreSQL's defaults), for measuring
    # durable commits (scripts/bench_group_commit.py); tests run without.
    durable: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, prefix: str = "est") -> str:
        """Create a new empty database and return its URL."""
        import psycopg

        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def pg_ctl(self, *args: str) -> None:
        self._run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), *args], timeout=60)

    def init(self) -> None:
        """initdb: superuser `SUPERUSER`, local connections trusted."""
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            timeout=120,
        )

    def start(self) -> None:
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.root}",
            "-c max_connections=200",
        ]
        if self.durable:
            options += ["-c fsync=on", "-c synchronous_commit=on", "-c full_page_writes=on"]
        else:
            # Throwaway data: durability off makes initdb-to-ready quick.
            options += ["-c fsync=off", "-c full_page_writes=off"]
        self.pg_ctl(
            "-l", str(self.root / "server.log"), "-w", "-t", "60", "-o", " ".join(options), "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-m", mode, "-w", "-t", "60", "stop")

    def terminate_backends(self, url: str) -> int:
        """Kill every server process connected to the database of `url` (a dropped link)."""
        import psycopg

        dbname = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchall()
        return len(rows)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = (self.root / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _run(self, argv: Sequence[str], timeout: float) -> None:
        command = list(argv)
        if self.run_as is not None:
            command = ["runuser", "-u", self.run_as, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:1])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{self.log_tail()}"
            )


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PgCluster]:
    """initdb, start, yield, stop and delete a cluster (skip when PostgreSQL is absent)."""
    pytest.importorskip("psycopg", reason="psycopg is not installed (pip install -e '.[test]')")
    bin_dir = postgres_bin()
    run_as: str | None = None
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        run_as = os.environ.get("PG_TEST_USER", "postgres")
        require_tool("runuser")
        try:
            owner = pwd.getpwnam(run_as)
        except KeyError:
            pytest.fail(f"PostgreSQL cannot run as root and there is no user {run_as!r}")
    # Not pytest's tmp_path: its parents are private to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="python-est-pg-"))
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster = PgCluster(bin_dir=bin_dir, root=root, port=free_port(), run_as=run_as)
    try:
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                cluster.stop("immediate")
    finally:
        shutil.rmtree(root, ignore_errors=True)


HAPROXY_CFG = """\
global
    maxconn 1024

defaults
    mode tcp
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    # A refused connection (an instance that is down) is retried on another instance.
    retries 3
    option redispatch

frontend est
    bind 127.0.0.1:{port}
    default_backend instances

backend instances
    balance roundrobin
{source}{servers}
"""
# With the PROXY protocol, HAProxy connects to the instances from this loopback address (the
# instances' `trusted_proxies`), so tests connecting straight from 127.0.0.1 stay direct clients.
PROXY_SOURCE = "127.0.0.2"


@dataclass
class HaProxy:
    """A running HAProxy in TCP mode (TLS passes through to the instances)."""

    process: subprocess.Popen[bytes]
    port: int
    config: Path


@contextlib.contextmanager
def haproxy(
    directory: Path, backends: Sequence[int], *, proxy_protocol: bool = False
) -> Iterator[HaProxy]:
    """Run HAProxy on a free loopback port, balancing over 127.0.0.1:`backends`.

    With `proxy_protocol`, HAProxy connects from `PROXY_SOURCE` and starts every connection,
    health checks included (a LOCAL header), with a PROXY v2 header (`send-proxy-v2`).
    """
    binary = require_tool("haproxy")
    port = free_port()
    options = " send-proxy-v2 check-send-proxy" if proxy_protocol else ""
    servers = "\n".join(
        f"    server i{n} 127.0.0.1:{backend} check inter 300ms fall 1 rise 2{options}"
        for n, backend in enumerate(backends)
    )
    source = f"    source {PROXY_SOURCE}\n" if proxy_protocol else ""
    config = directory / "haproxy.cfg"
    config.write_text(HAPROXY_CFG.format(port=port, servers=servers, source=source))
    log = (directory / "haproxy.log").open("wb")
    process = subprocess.Popen(
        [binary, "-db", "-f", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(port)
        yield HaProxy(process, port, config)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
