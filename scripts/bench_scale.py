#!/usr/bin/env python3
"""Enrollment throughput through HAProxy with one and with two python-est instances, in one run.

Starts a throwaway PostgreSQL cluster and two `python main.py` instances on it (each with its own
copy of the state directory, as on two hosts), then measures the same load through HAProxy (TCP
mode, TLS passthrough) balancing first over instance A alone, then over A and B, and for
reference straight at A.

The load is `scripts/bench.py --host --port` (the project's benchmark: multi-process Python ssl
clients, curl for TLS-SRP) for the scenarios given, or with `--load mix` a built-in mix of
/simpleenroll by HTTP Basic and by TLS-SRP (tlslite clients) and /simplereenroll by client
certificate from `--procs` processes of `--threads` threads, which counts errors and retries.
Clients need CPU too: on a small machine they compete with the servers, and the figures show it.
It prints figures and asserts none. Needs PostgreSQL, HAProxy and psycopg, like the test.

    python scripts/bench_scale.py [--seconds 4] [--scenarios enroll-basic,enroll-cert]
    python scripts/bench_scale.py --load mix [--enrollments 600] [--procs 2] [--threads 8]
"""

from __future__ import annotations

import argparse
import multiprocessing
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from est_harness import (  # noqa: E402
    TEST_CFG,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    merge_config,
    srp,
    write_credentials,
)
from python_est import wire  # noqa: E402
from python_est.ca import certificate_pem  # noqa: E402
from python_est.config import load_config  # noqa: E402
from python_est.ledger import IssuedCertificate  # noqa: E402
from python_est.state import open_state  # noqa: E402
from tests.pg_support import free_port, haproxy, postgres_cluster, wait_for_port  # noqa: E402

# scripts/bench.py enrolls as this user with this password (CN=bench).
BENCH_USER, BENCH_PASSWORD = "bench", "bench password 1"
MIX_USERS = [f"mix-{n}" for n in range(8)]
MIX_PASSWORD = "mix password"
CERT_CLIENTS = 16
Certs = list[tuple[str, str, str]]


def _enroll(job: int, port: int, ca_file: str, certs: Certs) -> float | None:
    """One enrollment of the mix, retried up to 5 times; its latency, or None if it failed."""
    started = time.perf_counter()
    for _ in range(5):
        kind = job % 3
        try:
            if kind == 2:
                cert_path, key_path, cn = certs[job % len(certs)]
                csr, _ = make_csr(cn)
                request = build_request(
                    "POST",
                    "/.well-known/est/simplereenroll",
                    csr_body(csr),
                    {"Content-Type": "application/pkcs10"},
                    port,
                )
                pair = (Path(cert_path), Path(key_path))
                reply = https(port, request, cafile=Path(ca_file), client_cert=pair)
            else:
                user = MIX_USERS[job % len(MIX_USERS)]
                csr, _ = make_csr(user)
                headers = {"Content-Type": "application/pkcs10"}
                if kind == 0:
                    headers["Authorization"] = basic(user, MIX_PASSWORD)
                path = "/.well-known/est/simpleenroll"
                request = build_request("POST", path, csr_body(csr), headers, port)
                if kind == 0:
                    reply = https(port, request, cafile=Path(ca_file))
                else:
                    reply = srp(port, user, MIX_PASSWORD, request)
        except OSError:
            continue  # a reset or timeout under load: the client retries, as devices do
        if reply.status == 200:
            wire.decode_certs_only(reply.body)
            return time.perf_counter() - started
    return None


def _client_process(jobs: list[int], port: int, ca_file: str, certs: Certs, threads: int) -> list:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda job: _enroll(job, port, ca_file, certs), jobs))


def _mix(label: str, port: int, args: argparse.Namespace, ca_file: Path, certs: Certs) -> None:
    _client_process(list(range(6)), port, str(ca_file), certs, 3)  # warm-up, not counted
    jobs = list(range(args.enrollments))
    shares = [jobs[n :: args.procs] for n in range(args.procs)]
    started = time.perf_counter()
    # spawn, not fork: forking a process that has threads can inherit a lock held mid-call.
    with ProcessPoolExecutor(args.procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [
            pool.submit(_client_process, share, port, str(ca_file), certs, args.threads)
            for share in shares
        ]
        results = [t for future in futures for t in future.result()]
    elapsed = time.perf_counter() - started
    latencies = sorted(t for t in results if t is not None)
    failed = len(results) - len(latencies)
    p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)] if latencies else float("nan")
    median = statistics.median(latencies) if latencies else float("nan")
    print(
        f"{label:<32} {len(latencies):>5} enrollments {elapsed:6.2f} s "
        f"{len(latencies) / elapsed:7.1f}/s  p50 {median * 1000:6.1f} ms"
        f"  p95 {p95 * 1000:6.1f} ms  failed {failed}",
        flush=True,
    )


def _bench_py(label: str, port: int, args: argparse.Namespace, state_dir: Path) -> None:
    print(f"--- {label}", flush=True)
    command = [
        sys.executable,
        str(ROOT / "scripts" / "bench.py"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--state-dir",
        str(state_dir),
        "--scenarios",
        args.scenarios,
        "--seconds",
        str(args.seconds),
        "--user",
        BENCH_USER,
        "--password",
        BENCH_PASSWORD,
    ]
    if args.clients:
        command += ["--clients", str(args.clients)]
    subprocess.run(command, cwd=ROOT, check=False, timeout=600)


def _start(config: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "main.py"), "-c", str(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    wait_for_port(port, timeout=30)
    return process


def _prepare(root: Path, url: str) -> tuple[dict[str, int], dict[str, Path], Path, Certs]:
    ports = {"a": free_port(), "b": free_port()}
    configs = {}
    for name, port in ports.items():
        configs[name] = root / f"{name}.cfg"
        configs[name].write_text(
            merge_config(
                TEST_CFG,
                f"[server]\nport = {port}\nstate_dir = {root / ('state-' + name)}\n"
                f"[ledger]\nurl = {url}\n",
            )
        )
    for command in (["db", "upgrade"], ["init"]):
        subprocess.run(
            [sys.executable, str(ROOT / "main.py"), "-c", str(configs["a"]), *command],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    shutil.copytree(root / "state-a", root / "state-b")
    state = open_state(load_config(configs["a"]), create=False)
    try:
        assert state.users is not None
        state.users.add(BENCH_USER, BENCH_PASSWORD)
        for user in MIX_USERS:
            state.users.add(user, MIX_PASSWORD)
        ca_file = root / "trust.pem"
        ca_file.write_bytes(certificate_pem(state.ca.root))
        certs = []
        for n in range(CERT_CLIENTS):
            cn = f"mix-cert-{n}"
            cert, key = state.ca.issue_client_certificate(common_name=cn)
            # Recorded under the default label, so its /simplereenroll is accepted there.
            state.ledger.record(
                IssuedCertificate.from_certificate(
                    cert, requester="bench", auth_method="admin", label="", operation="init"
                )
            )
            paths = write_credentials(root, cn, cert, key)  # type: ignore[arg-type]
            certs.append((str(paths[0]), str(paths[1]), cn))
    finally:
        state.ledger.close()
    return ports, configs, ca_file, certs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--load", choices=["bench", "mix"], default="bench")
    parser.add_argument("--scenarios", default="enroll-basic,enroll-cert,enroll-srp")
    parser.add_argument("--seconds", type=float, default=4.0, help="bench.py seconds per cell")
    parser.add_argument("--clients", type=int, default=0, help="bench.py generator processes")
    parser.add_argument("--enrollments", type=int, default=600, help="mix: enrollments per run")
    parser.add_argument("--procs", type=int, default=2, help="mix: client processes")
    parser.add_argument("--threads", type=int, default=8, help="mix: threads per process")
    args = parser.parse_args(argv)
    # Stop the servers, HAProxy and PostgreSQL on SIGTERM too, not only on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
    root = Path(tempfile.mkdtemp(prefix="python-est-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with postgres_cluster() as cluster:
            ports, configs, ca_file, certs = _prepare(root, cluster.create_database())
            for name, port in ports.items():
                processes.append(_start(configs[name], port, root / f"{name}.log"))
            measure: Callable[[str, int], None]
            if args.load == "mix":
                print(
                    f"Basic, TLS-SRP and certificate enrollments; {args.procs} client processes"
                    f" x {args.threads} threads; PostgreSQL on loopback",
                    flush=True,
                )

                def measure(label: str, port: int) -> None:
                    _mix(label, port, args, ca_file, certs)

            else:

                def measure(label: str, port: int) -> None:
                    _bench_py(label, port, args, root / "state-a")

            measure("1 instance, direct (no HAProxy)", ports["a"])
            for backends, label in (
                ([ports["a"]], "1 instance behind HAProxy"),
                ([ports["a"], ports["b"]], "2 instances behind HAProxy"),
            ):
                directory = root / f"haproxy-{len(backends)}"
                directory.mkdir()
                with haproxy(directory, backends) as proxy:
                    measure(label, proxy.port)
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
