#!/usr/bin/env python3
"""Ledger writes with and without group commit, at 1, 4 and 16 concurrent writers, in one run.

Usage, from the repository root:

    python scripts/bench_group_commit.py [-n 2000] [--writers 1 4 16] [--postgres URL]

Each configuration runs in a fresh child process on a fresh SQLite ledger (synchronous=FULL, in
a temporary directory on the file system of --dir): `batch_limit=1` (every record its own
transaction, as before group commit) against the default limit. Writer threads call
`SqliteLedger.record` back to back with certificates made before the clock starts, so the
figures are the ledger's alone: records/s, process CPU per record, transactions per record and,
when strace is installed, the fsync and fdatasync calls per record counted by
`strace -f -c` (setup included: a few calls per run). With --postgres the same runs go to
PostgresLedger on that database (it adds rows; use a throwaway database); the server's fsyncs
are another process's, so only transactions per record are shown. The script prints figures and
asserts nothing: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from python_est.ledger import IssuedCertificate, SqliteLedger  # noqa: E402
from python_est.ledger.group import DEFAULT_LIMIT  # noqa: E402


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
            Database(args.postgres, pool_size=args.writers), batch_limit=args.limit
        )
    else:
        ledger = SqliteLedger(Path(args.ledger), batch_limit=args.limit)
    shares = [work[i :: args.writers] for i in range(args.writers)]
    barrier = threading.Barrier(args.writers + 1)

    def writer(share: list[IssuedCertificate]) -> None:
        barrier.wait()
        for entry in share:
            ledger.record(entry)

    threads = [threading.Thread(target=writer, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"wall": wall, "cpu": cpu, "commits": ledger._group.commits}))
    ledger.close()


def run(args: argparse.Namespace, writers: int, limit: int, strace: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        command = [
            sys.executable,
            __file__,
            "--child",
            f"-n{args.n}",
            f"--writers={writers}",
            f"--limit={limit}",
            f"--ledger={Path(tmp) / 'ledger.sqlite3'}",
        ]
        if args.postgres:
            command.append(f"--postgres={args.postgres}")
        counts = Path(tmp) / "strace.txt"
        if strace and not args.postgres:
            trace = ["-f", "-qq", "-c", "-o", str(counts), "-e", "trace=fsync,fdatasync"]
            command = [strace, *trace, *command]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        figures: dict[str, float] = json.loads(out.strip().splitlines()[-1])
        figures["fsyncs"] = syncs(counts) if counts.exists() else float("nan")
    return figures


def syncs(report: Path) -> float:
    # strace -c's table: "% time  seconds  usecs/call  calls  errors  syscall".
    total = 0
    for line in report.read_text().splitlines():
        fields = line.split()
        if fields and fields[-1] in ("fsync", "fdatasync"):
            total += int(fields[3])
    return float(total)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-n", type=int, default=2000, help="records per configuration")
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--dir", default=None, help="where the temporary ledgers go")
    parser.add_argument("--postgres", default=None, help="a throwaway PostgreSQL database URL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT, help=argparse.SUPPRESS)
    parser.add_argument("--ledger", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.writers = args.writers[0]
        child(args)
        return
    strace = shutil.which("strace")
    backend = "PostgreSQL" if args.postgres else "SQLite (WAL, synchronous=FULL)"
    print(f"{backend}, {args.n} records per run, load average {os.getloadavg()[0]:.2f}")
    print(
        f"{'writers':>7} {'grouping':>9} {'records/s':>10} {'CPU ms/rec':>11}"
        f" {'tx/rec':>7} {'fsync/rec':>10}"
    )
    for writers in args.writers:
        for limit in (1, DEFAULT_LIMIT):
            figures = run(args, writers, limit, strace)
            print(
                f"{writers:>7} {'off' if limit == 1 else f'≤{limit}':>9}"
                f" {args.n / figures['wall']:>10.0f} {1000 * figures['cpu'] / args.n:>11.3f}"
                f" {figures['commits'] / args.n:>7.3f} {figures['fsyncs'] / args.n:>10.3f}"
            )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
