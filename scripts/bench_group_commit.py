#!/usr/bin/env python3
"""Ledger writes with and without group commit, at 1, 4 and 16 concurrent writers, in one run.

Usage, from the repository root:

    python scripts/bench_group_commit.py [-n 2000] [--writers 1 4 16] [--rounds 3]
                                         [--local-postgres]
    python scripts/bench_group_commit.py --postgres URL

Each configuration runs in a fresh child process on a fresh ledger: grouping `off`
(`batch_limit=1`: every record its own transaction, one commit at a time) against the default
limit. Writer threads call `record` back to back with certificates made before the clock starts,
so the figures are the ledger's alone: records/s, the child's process CPU per record (the client
side), and transactions per record. Every configuration runs --rounds times, the rounds one
after another (every other one in reverse order), and the table shows each configuration's
median run (by time).

SQLite (always, unless --postgres): a fresh file in a temporary directory on the file system of
--dir, WAL, synchronous=FULL; fsync and fdatasync calls per record counted by `strace -f -c`
when strace is installed (setup included: a few calls per run). `off` is how SqliteLedger
recorded before group commit (its lock let one writer commit at a time).

PostgreSQL's rows: `off` (batch_limit=1), `on, 1` (grouped, one transaction in flight at a
time, as first built) and `≤64` (grouped, the default two in flight: ledger.group).

--local-postgres: then the same against a throwaway PostgreSQL cluster that this script starts
(initdb in a temporary directory under --dir, 127.0.0.1 on a free port, fsync, synchronous_commit
and full_page_writes on, wal_sync_method at its default; as root it runs as the `postgres` user
or $PG_TEST_USER) and stops and deletes at the end, Ctrl-C included; a fresh database per
configuration, and a CHECKPOINT before each. PostgreSQL gets a third row per writer count,
`parallel`: how PostgresLedger recorded before group commit, each record its own transaction,
the writers' transactions concurrent on the connection pool (PostgreSQL's own WAL flush may then
cover several commits).
The server's WAL fsyncs and writes per record are the deltas of `pg_stat_wal` (wal_sync,
wal_write; PostgreSQL 14 or later), read once the run's sessions have ended (a backend
publishes its counts when it exits): every server process's, the WAL writer's included.

--postgres URL: PostgresLedger on that database instead (schema from `python-est db upgrade`;
it adds rows, so use a throwaway database); pg_stat_wal is read there too, if readable, and then
counts whatever else that server does meanwhile.

The script prints figures and asserts nothing: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from python_est.ledger import IssuedCertificate, SqliteLedger  # noqa: E402
from python_est.ledger.group import DEFAULT_LIMIT  # noqa: E402

if TYPE_CHECKING:
    from tests.pg_support import PgCluster

NAN = float("nan")
PARALLEL = 0  # --limit for PostgreSQL's baseline: no group at all (see `child`)
ONE_IN_FLIGHT = -1  # --limit for PostgreSQL grouped with one transaction at a time (before 2)


def entries(count: int) -> list[IssuedCertificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    made = []
    for index in range(count):
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"device-{index}")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        made.append(
            IssuedCertificate.from_certificate(
                cert, requester="bench", auth_method="basic", label="", operation="simpleenroll"
            )
        )
    return made


def child(args: argparse.Namespace) -> None:
    """One configuration; prints its figures as JSON."""
    work = entries(args.n)
    if args.postgres:
        from python_est.ledger.postgres import PostgresLedger
        from python_est.pgsql import Database

        ledger: SqliteLedger | PostgresLedger = PostgresLedger(
            Database(args.postgres, pool_size=args.writers),
            batch_limit=DEFAULT_LIMIT if args.limit == ONE_IN_FLIGHT else max(args.limit, 1),
            in_flight=1 if args.limit == ONE_IN_FLIGHT else 2,
        )
    else:
        ledger = SqliteLedger(Path(args.ledger), batch_limit=args.limit)
    record = ledger.record
    if args.limit == PARALLEL:
        # PostgresLedger before group commit: each record its own transaction, the writers'
        # transactions concurrent on the pool (batch_limit=1 instead commits one at a time).
        def record(entry: IssuedCertificate) -> None:
            [outcome] = ledger._record_batch([entry])
            if outcome is not None:
                raise outcome

    shares = [work[i :: args.writers] for i in range(args.writers)]
    barrier = threading.Barrier(args.writers + 1)

    def writer(share: list[IssuedCertificate]) -> None:
        barrier.wait()
        for entry in share:
            record(entry)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    commits = args.n if args.limit == PARALLEL else ledger._group.commits
    print(json.dumps({"wall": wall, "cpu": cpu, "commits": commits}))
    ledger.close()


def child_command(args: argparse.Namespace, writers: int, limit: int, target: str) -> list[str]:
    """The child's command line; `target` is --ledger=PATH or --postgres=URL."""
    return [
        sys.executable,
        __file__,
        "--child",
        f"-n{args.n}",
        f"--writers={writers}",
        f"--limit={limit}",
        target,
    ]


def child_figures(command: list[str]) -> dict[str, float]:
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return figures


def sqlite_run(
    args: argparse.Namespace, writers: int, limit: int, strace: str | None
) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        command = child_command(args, writers, limit, f"--ledger={Path(tmp) / 'ledger.sqlite3'}")
        counts = Path(tmp) / "strace.txt"
        if strace:
            trace = ["-f", "-qq", "-c", "-o", str(counts), "-e", "trace=fsync,fdatasync"]
            command = [strace, *trace, *command]
        figures = child_figures(command)
        figures["fsyncs"] = syncs(counts) if counts.exists() else NAN
    return figures


def syncs(report: Path) -> float:
    # strace -c's table: "% time  seconds  usecs/call  calls  errors  syscall".
    total = 0
    for line in report.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] in ("fsync", "fdatasync"):
            total += int(fields[3])
    return float(total)


def postgres_run(args: argparse.Namespace, url: str, writers: int, limit: int) -> dict[str, float]:
    syncs0, writes0 = wal_counts(url)
    figures = child_figures(child_command(args, writers, limit, f"--postgres={url}"))
    syncs1, writes1 = wal_counts(url)
    figures["fsyncs"], figures["writes"] = syncs1 - syncs0, writes1 - writes0
    return figures


def wal_counts(url: str) -> tuple[float, float]:
    """pg_stat_wal's (wal_sync, wal_write) of the server of `url`, the whole server's; NaN when
    it cannot be read (PostgreSQL before 14)."""
    import psycopg

    others = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            # A backend publishes its counts when it exits, at the latest: wait for the run's
            # sessions to end (bounded: another client of a shared database may stay).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _scalar(conn.execute(others).fetchone()):
                time.sleep(0.05)
            row = conn.execute("SELECT wal_sync, wal_write FROM pg_stat_wal").fetchone()
    except psycopg.Error:
        return NAN, NAN
    return (float(row[0]), float(row[1])) if row else (NAN, NAN)


def _scalar(row: tuple[int, ...] | None) -> int:
    return row[0] if row else 0


@contextlib.contextmanager
def durable_postgres(directory: str | None) -> Iterator[PgCluster]:
    """A throwaway local PostgreSQL with durable commits; stopped and deleted at the end."""
    # The tests' cluster helper, started with durability on (PostgreSQL and psycopg are needed
    # for this option only).
    from tests.pg_support import PgCluster, free_port, postgres_bin

    root = Path(tempfile.mkdtemp(prefix="python-est-bench-pg-", dir=directory))
    run_as = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        run_as = os.environ.get("PG_TEST_USER", "postgres")
        owner = pwd.getpwnam(run_as)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    try:
        cluster = PgCluster(postgres_bin(), root, free_port(), run_as, durable=True)
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            cluster.stop("fast")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(cluster: PgCluster) -> str:
    """A new database on `cluster` with the ledger's schema; its URL."""
    from python_est.pgsql import Database, upgrade

    url = cluster.create_database("bench")
    db = Database(url, pool_size=1)
    try:
        upgrade(db)
        # Every run starts from the same clean state: nothing left for the checkpointer and the
        # background writer from the previous run or from CREATE DATABASE.
        db.run(lambda cursor: cursor.execute("CHECKPOINT"))
    finally:
        db.close()
    return url


PG_LIMITS = (PARALLEL, 1, ONE_IN_FLIGHT, DEFAULT_LIMIT)
LABELS = {PARALLEL: "parallel", 1: "off", ONE_IN_FLIGHT: "on, 1"}
HEADER = (
    f"{'writers':>7} {'grouping':>9} {'records/s':>10} {'CPU ms/rec':>11}"
    f" {'tx/rec':>7} {'fsync/rec':>10} {'WAL writes/rec':>15}"
)


def row(args: argparse.Namespace, writers: int, limit: int, figures: dict[str, float]) -> str:
    writes = figures.get("writes")
    return (
        f"{writers:>7} {LABELS.get(limit, f'≤{limit}'):>9}"
        f" {args.n / figures['wall']:>10.0f} {1000 * figures['cpu'] / args.n:>11.3f}"
        f" {figures['commits'] / args.n:>7.3f} {figures['fsyncs'] / args.n:>10.3f}"
        f" {'-' if writes is None else f'{writes / args.n:.3f}':>15}"
    )


def table(
    args: argparse.Namespace,
    title: str,
    measure: Callable[[int, int], dict[str, float]],
    limits: tuple[int, ...] = (1, DEFAULT_LIMIT),
) -> None:
    """Each configuration `args.rounds` times, the rounds one after another (so a change in the
    machine's load falls on every configuration alike); prints the median run of each."""
    print(f"\n{title}, {args.n} records per run, load average {os.getloadavg()[0]:.2f}")
    configurations = [(writers, limit) for writers in args.writers for limit in limits]
    runs: dict[tuple[int, int], list[dict[str, float]]] = {c: [] for c in configurations}
    for round_ in range(args.rounds):
        # Every other round backwards, so no configuration always runs right after another.
        for writers, limit in configurations[:: -1 if round_ % 2 else 1]:
            runs[writers, limit].append(measure(writers, limit))
    print(f"median of {args.rounds} round(s) by time, load average {os.getloadavg()[0]:.2f}")
    print(HEADER)
    for (writers, limit), figures in runs.items():
        median = sorted(figures, key=lambda f: f["wall"])[len(figures) // 2]
        print(row(args, writers, limit, median))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=2000, help="records per configuration")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--dir", default=None, help="where the temporary ledgers go")
    parser.add_argument("--postgres", default=None, help="a throwaway PostgreSQL database URL")
    parser.add_argument(
        "--local-postgres",
        action="store_true",
        help="also measure a throwaway local PostgreSQL cluster with durable commits",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=argparse.SUPPRESS)
    parser.add_argument("--ledger", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.writers = args.writers[0]
        child(args)
        return
    # SIGTERM ends the run as Ctrl-C does: through the `finally` that stops the cluster.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    if args.postgres:
        url = args.postgres
        table(args, "PostgreSQL", lambda w, limit: postgres_run(args, url, w, limit), PG_LIMITS)
        return
    strace = shutil.which("strace")
    table(
        args,
        "SQLite (WAL, synchronous=FULL)",
        lambda w, limit: sqlite_run(args, w, limit, strace),
    )
    if args.local_postgres:
        with durable_postgres(args.dir) as cluster:
            table(
                args,
                "PostgreSQL, local cluster (fsync, synchronous_commit, full_page_writes on)",
                lambda w, limit: postgres_run(args, fresh_database(cluster), w, limit),
                PG_LIMITS,
            )
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit("interrupted")
