#!/usr/bin/env python3
"""EST server benchmark: tlslite-ng (the product) side by side with Python `ssl` (OpenSSL).

The script creates a state directory and configuration and starts the servers itself
(`python main.py -c CFG`, port parsed from its "listening on" line), or uses `--host/--port`.
A multi-process load generator (`scripts/bench_load.py`) drives them: Python `ssl` clients, and
curl for TLS-SRP, one new TLS connection per request (`--resume`: resumed ones too). The same
run measures the baseline, `scripts/bench_baseline.py`: the same EST service served through
Python's `ssl` module, so the cost of the TLS engine shows as a ratio even on a noisy machine.
`--generator independent` (or `both`) drives the handshake, cacerts and enroll-basic cells with
`scripts/bench_ssl_clients.py` instead (or as well): N processes of plain `ssl` clients that
share no code with `bench_load`, so the figures can be checked against a second generator.
Each cell reports requests/s, p50/p90/p99 latency, errors by kind, the server's CPU per request
(user+system of the server process and its children, from /proc/PID/stat; its kernel share;
the cores it kept busy), "runq": the thread-seconds per second its threads were runnable but
waited for a CPU (/proc/PID/task/*/schedstat: the machine's share of an idle core, not the
server's), its threads' context switches per request, and the load generator's CPU per
request. Cells are measured in
`--rounds` interleaved rounds and the least disturbed round (highest rate) is reported. It
prints figures and asserts none.

    python scripts/bench.py                       # the default run, about 2 minutes
    python scripts/bench.py --resume --seconds 4  # every scenario also with resumption
    python scripts/bench.py --workers 1,2,4 --scenarios enroll-basic --no-baseline
    python scripts/bench.py --pure-python-tls     # tlslite without the OpenSSL fast path
    python scripts/bench.py --generator both --p256-ca --workers 1,2 --clients 4 \
        --scenarios cacerts,enroll-basic --seconds 3   # issue 20's figures, about 3 minutes
    python scripts/bench.py --py-spy prof/ && python scripts/bench_profile.py prof/*.txt
    python scripts/bench.py --host 127.0.0.1 --port 8443 --state-dir PATH  # a running server

Scenarios: handshake (a TLS handshake, no request), cacerts, cacerts-srp (TLS-SRP, then GET
/cacerts), enroll-basic, enroll-cert, enroll-srp, reenroll, serverkeygen. The bench user enrolls
by Basic auth once to get the client certificate of enroll-cert and reenroll. See
docs/performance.md.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import multiprocessing
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519  # noqa: E402
from cryptography.hazmat.primitives.serialization import pkcs7  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from bench_load import SRP_SCENARIOS, Job, run  # noqa: E402
from bench_measure import difference, independent_cell, sample  # noqa: E402
from bench_report import (  # noqa: E402
    HEADER,
    Cell,
    best,
    issue20_targets,
    issue_table,
    make_cell,
    ratios,
    row,
    scaling,
    targets,
)

SCENARIOS = (
    "handshake",
    "cacerts",
    "cacerts-srp",
    "enroll-basic",
    "enroll-cert",
    "enroll-srp",
    "reenroll",
    "serverkeygen",
)
# What `scripts/bench_ssl_clients.py`, the independent generator, can drive.
INDEPENDENT = frozenset({"handshake", "cacerts", "enroll-basic"})
# Measured on the P-256 CA server too (`--p256-ca`): issue 20's table.
P256_SCENARIOS = frozenset({"cacerts", "enroll-basic"})
# Measured on the server running a Cython-compiled tlslite too (`--compiled-tlslite`).
COMPILED_SCENARIOS = frozenset({"handshake", "cacerts", "enroll-basic"})
ENROLLING = frozenset({"enroll-basic", "enroll-cert", "enroll-srp", "reenroll", "serverkeygen"})
USER, PASSWORD = "bench", "bench password 1"
CSR_POOL = 16
# Starts the product's CLI, optionally with parts of the fast path off (before/after figures).
BOOT = """
import sys
if {no_gmpy2}:
    sys.modules["gmpy2"] = None  # tlslite then computes with Python integers
import python_est.tls
import python_est.tls.endpoint
if {pure}:  # tickets too: only an accelerated endpoint switches their ciphers to OpenSSL
    python_est.tls.endpoint.TlsEndpoint.__init__.__kwdefaults__["accelerated"] = False
if {compiled}:  # --compiled-tlslite: refuse to measure the installed tlslite under its name
    import tlslite.tlsconnection
    if tlslite.tlsconnection.__file__.endswith(".py"):
        sys.exit("--compiled-tlslite: the server imported " + tlslite.tlsconnection.__file__)
from python_est.cli import main
sys.exit(main(sys.argv[1:]))
"""


@dataclass(frozen=True)
class Server:
    name: str  # "tlslite", "tlslite-p256" (a P-256 CA), "tlslite-compiled", "openssl"
    workers: int
    pid: int | None  # None: CPU not measured
    port: int
    ca_file: str = ""  # its own CA (the P-256 server's state); "": the run's


# --- processes -------------------------------------------------------------------------------


@contextlib.contextmanager
def started(
    command: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[int, int]]:
    """Run a server; yield (pid, port) once it prints "listening on HOST:PORT"."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, bufsize=1, env=env
        )
    try:
        assert proc.stdout is not None
        port = None
        for line in proc.stdout:
            if "listening on " in line:
                address = line.split("listening on ", 1)[1].split(";")[0].split()[0]
                port = int(address.rsplit(":", 1)[1])
                break
        if port is None:
            raise SystemExit(f"server did not start: {' '.join(command[-2:])}; see {log}")
        yield proc.pid, port
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- set-up ----------------------------------------------------------------------------------


def write_config(
    workdir: Path, workers: int, args: argparse.Namespace, ca_key_type: str = ""
) -> Path:
    state = "state" if not ca_key_type else f"state-{ca_key_type}"
    path = workdir / f"est-{workers}{'-' + ca_key_type if ca_key_type else ''}.cfg"
    path.write_text(
        "\n".join(
            [
                "[server]",
                "address = 127.0.0.1",
                "port = 0",
                f"state_dir = {workdir / state}",
                f"workers = {workers}",
                "[logging]",
                f"level = {args.log_level}",
                "[ca]",
                f"key_type = {ca_key_type or args.ca_key_type}",
                "[auth]",
                "max_failures = 1000000",
                "[profile]",
                f"serverkeygen_key_type = {args.serverkeygen_key_type}",
                "",
            ]
        )
    )
    return path


def prepare_state(cfg: Path) -> None:
    """The CA, server credentials and ledger (`init`) and the bench user."""
    base = [sys.executable, "main.py", "-c", str(cfg)]
    subprocess.run([*base, "init"], cwd=ROOT, check=True, capture_output=True)
    subprocess.run(
        [*base, "user", "add", USER, "--password-stdin"],
        cwd=ROOT,
        check=True,
        input=f"{PASSWORD}\n",
        text=True,
        capture_output=True,
    )


def csr_body(key: ec.EllipticCurvePrivateKey, user: str) -> bytes:
    """A base64 PKCS#10 for CN=user (what `password_subjects = own` allows a password user)."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))


def client_credentials(base: Job, port: int, workdir: Path) -> tuple[str, str]:
    """Enroll once by Basic auth; the certificate becomes the client certificate."""
    host = base.host
    key = ec.generate_private_key(ec.SECP256R1())
    body = csr_body(key, base.user)
    token = base64.b64encode(f"{base.user}:{base.password}".encode()).decode()
    head = (
        f"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: {host}\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/pkcs10\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    ctx = ssl.create_default_context(cafile=base.ca_file)
    with (
        socket.create_connection((host, port)) as raw,
        ctx.wrap_socket(raw, server_hostname=host) as tls,
    ):
        tls.sendall(head + body)
        reply = b""
        while chunk := tls.recv(65536):
            reply += chunk
    status, _, payload = reply.partition(b"\r\n\r\n")
    if not status.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"the set-up enrollment failed: {status.splitlines()[0]!r}")
    cert = pkcs7.load_der_pkcs7_certificates(base64.b64decode(payload))[0]
    cert_file, key_file = workdir / "client.pem", workdir / "client.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


# --- measuring -------------------------------------------------------------------------------


def calibration() -> str:
    """This machine's speed now, to compare runs: Python and OpenSSL work (best of 3)."""
    key = ec.generate_private_key(ec.SECP256R1())
    python_ms = openssl_ms = float("inf")
    for _ in range(3):
        start = time.process_time()
        total = 0
        for i in range(1_000_000):
            total += i
        python_ms = min(python_ms, (time.process_time() - start) * 1000)
        start = time.process_time()
        for _ in range(200):
            key.sign(b"calibration", ec.ECDSA(hashes.SHA256()))
        openssl_ms = min(openssl_ms, (time.process_time() - start) * 1000)
    return f"1e6 Python additions {python_ms:.1f} ms, 200 P-256 signatures {openssl_ms:.1f} ms"


def floor(ca_key_type: str, workdir: Path) -> str:
    """The OpenSSL and gmpy2 work one Basic enrollment cannot avoid, timed here (best of 3).

    A lower bound for issue 20 item 4: the CA's signature, the TLS server key's signature in a
    full handshake (the default rsa-2048 key), an X25519 exchange, the CSR's P-256 signature
    check and the Basic password's SRP verifier (g^x mod N). Python, the ledger's commit and
    the kernel come on top.
    """
    from python_est.keys import KeyType, generate_private_key
    from python_est.users import UserStore

    users = UserStore.create(workdir / f"floor-{ca_key_type}.srp", reload_interval=None)
    users.add(USER, PASSWORD)
    ca_key = generate_private_key(KeyType(ca_key_type))
    tls_key = generate_private_key(KeyType.RSA_2048)
    csr_key = ec.generate_private_key(ec.SECP256R1())
    signature = csr_key.sign(b"csr", ec.ECDSA(hashes.SHA256()))

    def sign(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> Callable[[], object]:
        if isinstance(key, rsa.RSAPrivateKey):
            return lambda: key.sign(b"tbs", padding.PKCS1v15(), hashes.SHA256())
        return lambda: key.sign(b"tbs", ec.ECDSA(hashes.SHA256()))

    def x25519_exchange() -> None:
        peer = x25519.X25519PrivateKey.generate().public_key()
        x25519.X25519PrivateKey.generate().exchange(peer)

    steps: dict[str, Callable[[], object]] = {
        f"CA signature ({ca_key_type})": sign(ca_key),
        "TLS signature (rsa-2048)": sign(tls_key),
        "X25519": x25519_exchange,
        "CSR check (P-256)": lambda: csr_key.public_key().verify(
            signature, b"csr", ec.ECDSA(hashes.SHA256())
        ),
        "password verifier": lambda: users.check_password(USER, PASSWORD),
    }
    costs = {}
    for name, step in steps.items():
        best_ms = float("inf")
        for _ in range(3):
            start = time.process_time()
            for _ in range(20):
                step()
            best_ms = min(best_ms, (time.process_time() - start) / 20 * 1000)
        costs[name] = best_ms
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in costs.items())
    return f"{sum(costs.values()):.2f} ms ({parts})"


def measure(
    server: Server, job: Job, clients: int, seconds: float, warmup: float, generator: str
) -> Cell:
    """One cell: `clients` generator processes in a closed loop for `seconds` after `warmup`."""
    if generator == "independent":
        return measure_independent(server, job, clients, seconds, warmup)
    start = time.monotonic() + warmup
    job = replace(job, port=server.port, start=start, end=start + seconds)
    with multiprocessing.get_context("fork").Pool(clients) as pool:
        pending = pool.map_async(run, [job] * clients)
        time.sleep(max(0.0, start - time.monotonic()))
        before = sample(server.pid)
        time.sleep(max(0.0, job.end - time.monotonic()))
        after = sample(server.pid)
        results = pending.get(timeout=seconds + 300)
    key = (server.name, server.workers, job.scenario, job.resume)
    return make_cell(key, results, seconds, *difference(before, after, seconds))


def measure_independent(
    server: Server, job: Job, clients: int, seconds: float, warmup: float
) -> Cell:
    """One cell driven by `scripts/bench_ssl_clients.py` (the independent generator)."""
    return independent_cell(
        (server.name, server.workers, job.scenario),
        server.pid,
        [
            *("--host", job.host, "--port", str(server.port), "--cafile", job.ca_file),
            *("--scenario", job.scenario, "--user", job.user, "--password", job.password),
            *("--processes", str(clients), "--seconds", str(seconds), "--warmup", str(warmup)),
        ],
        seconds,
    )


def plan(
    servers: Sequence[Server], scenarios: Sequence[str], args: argparse.Namespace
) -> list[tuple[Server, str, bool, str]]:
    """The cells, grouped by scenario so each comparison is measured close together in time."""
    scaled = set(args.scale_scenarios.split(","))
    generators = ["bench", "independent"] if args.generator == "both" else [args.generator]
    cells = []
    for scenario in scenarios:
        modes = [False, True] if args.resume or scenario == "handshake" else [False]
        for resume in modes:
            for generator in generators:
                if generator == "independent" and (resume or scenario not in INDEPENDENT):
                    continue  # it makes full handshakes of these scenarios only
                for server in servers:
                    if server.name == "openssl" and scenario in SRP_SCENARIOS:
                        continue  # Python ssl has no TLS-SRP
                    if server.workers > 1 and scenario not in scaled:
                        continue
                    if server.name == "tlslite-p256" and scenario not in P256_SCENARIOS:
                        continue
                    if server.name == "tlslite-compiled" and scenario not in COMPILED_SCENARIOS:
                        continue
                    cells.append((server, scenario, resume, generator))
    return cells


def run_cells(
    servers: Sequence[Server], scenarios: Sequence[str], base: Job, args: argparse.Namespace
) -> list[Cell]:
    keys = (ec.generate_private_key(ec.SECP256R1()) for _ in range(CSR_POOL))
    bodies = tuple(csr_body(key, base.user) for key in keys)
    measured = []
    cells = plan(servers, scenarios, args)
    for number in range(1, args.rounds + 1):
        print(f"round {number} of {args.rounds}: {len(cells)} cells", flush=True)
        for server, scenario, resume, generator in cells:
            job = replace(
                base,
                scenario=scenario,
                resume=resume,
                bodies=bodies if scenario in ENROLLING else (),
                ca_file=server.ca_file or base.ca_file,
            )
            clients = args.clients or 2 * max(1, server.workers)
            mode = "resumed" if resume else "full"
            name = f"{server.name}-{scenario}-{mode}-w{server.workers}-{generator}"
            spy = args.py_spy if number == 1 and server.pid else None
            with profiled(server, spy / f"{name}.txt" if spy else None, args.py_spy_idle):
                cell = measure(server, job, clients, args.seconds, args.warmup, generator)
                measured.append(cell)
    return best(measured)


@contextlib.contextmanager
def profiled(server: Server, output: Path | None, idle: bool) -> Iterator[None]:
    """Sample the server with py-spy while measuring: the GIL holder only (CPU in Python), or
    with `idle` every thread (where connections wait; `bench_profile.py --waits`)."""
    if output is None or server.pid is None:
        yield
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["py-spy", "record", "--pid", str(server.pid), "--subprocesses"]
    command.append("--idle" if idle else "--gil")
    command += ["--nonblocking", "--rate", "500", "--format", "raw", "--output", str(output)]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        spy.wait(timeout=60)


def print_results(cells: Sequence[Cell], rounds: int, floors: str) -> None:
    print(f"\nBest of {rounds} round(s) per cell (times in ms):")
    print(HEADER)
    for cell in cells:
        print(row(cell))
    generators = sorted({c.generator for c in cells})
    for generator in generators:
        name = "own generator" if generator == "bench" else "independent generator"
        for server in sorted({c.server for c in cells if c.server.startswith("tlslite")}):
            if any(c.generator == generator and c.server == server for c in cells):
                print(f"\n{server} / OpenSSL, workers = 1, {name}:")
                print("\n".join(ratios(cells, generator, server)))
        print(f"\nEnrollments (Basic, P-256 CSRs), {name}:")
        print("\n".join(scaling(cells, generator)))
        print(f"\nIssue 20's table, {name} (the OpenSSL baseline stands for the C server):")
        print("\n".join(issue_table(cells, generator)))
    print("\nTargets (issue 8; docs/performance.md):")
    print("\n".join(targets(cells)))
    print("\nTargets (issue 20; docs/performance.md):")
    print("\n".join(issue20_targets(cells)))
    print(f"  4: floor, the OpenSSL and gmpy2 work of one enrollment: {floors}")
    failed = sum(sum(c.errors.values()) for c in cells)
    if failed:
        print(f"\n{failed} requests failed in the reported rounds (see the errors column)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--seconds", type=float, default=2.0, help="measured seconds per cell")
    add("--warmup", type=float, default=0.3, help="unmeasured seconds before each cell")
    add("--rounds", type=int, default=2, help="interleaved rounds; the best is reported")
    add("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    add("--resume", action="store_true", help="every scenario also with resumed sessions")
    add("--workers", default="1,2", help="[server] workers values to measure")
    add("--scale-scenarios", default="handshake,enroll-basic", help="scenarios for workers > 1")
    add("--clients", type=int, default=0, help="generator processes (default: 2 per worker)")
    add("--no-baseline", action="store_true", help="skip the Python ssl server")
    add("--pure-python-tls", action="store_true", help="tlslite without the OpenSSL fast path")
    add("--no-gmpy2", action="store_true", help="tlslite with Python integers, not gmpy2")
    add("--py-spy", type=Path, metavar="DIR", help="profile each cell (first round) into DIR")
    add("--py-spy-idle", action="store_true", help="profile every thread, waiting or not")
    add("--log-level", default="info", help="server [logging] level")
    add("--ca-key-type", default="rsa-3072", help="[ca] key_type (the default's)")
    add("--serverkeygen-key-type", default="ec-p256", help="rsa-2048 is mostly prime search")
    add(
        "--generator",
        choices=("bench", "independent", "both"),
        default="bench",
        help="who drives the load: bench_load (own), bench_ssl_clients.py (independent), both",
    )
    add("--p256-ca", action="store_true", help="also a server with a P-256 CA (issue 20)")
    add(
        "--compiled-tlslite",
        type=Path,
        metavar="DIR",
        help="also a server importing tlslite from DIR (scripts/build_compiled_tlslite.py)",
    )
    add("--host", help="benchmark a running server instead (no baseline)")
    add("--port", type=int)
    add("--state-dir", type=Path, help="with --host: its state directory (for ca/ca.pem)")
    add("--server-pid", type=int, help="with --host: its pid, for the CPU figures")
    add("--server-workers", type=int, default=1, help="with --host: its [server] workers")
    add("--user", default=USER, help="with --host: a user of its store (Basic, SRP)")
    add("--password", default=PASSWORD, help="with --host: that user's password")
    args = parser.parse_args()
    unknown = set(args.scenarios.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    if args.host and (args.port is None or args.state_dir is None):
        parser.error("--host needs --port and --state-dir")
    if args.py_spy and shutil.which("py-spy") is None:
        parser.error("--py-spy needs py-spy (pip install py-spy)")
    return args


def main() -> int:
    args = parse_args()
    scenarios = [s for s in args.scenarios.split(",") if s]
    if shutil.which("curl") is None and set(scenarios) & SRP_SCENARIOS:
        print("curl not found: SRP scenarios skipped")
        scenarios = [s for s in scenarios if s not in SRP_SCENARIOS]
    gmpy2 = importlib.util.find_spec("gmpy2") is not None and not args.no_gmpy2
    print(
        f"tlslite: OpenSSL fast path {'off' if args.pure_python_tls else 'on'}, gmpy2 "
        f"{'yes' if gmpy2 else 'no'}; CA {args.ca_key_type}; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"{args.seconds:g} s per cell",
        flush=True,
    )
    print(f"calibration at the start: {calibration()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="est-bench-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        if args.host:
            ca_file = str(args.state_dir / "ca" / "ca.pem")
            servers = [Server("tlslite", args.server_workers, args.server_pid, args.port)]
            host = args.host
        else:
            host = "127.0.0.1"
            prepare_state(write_config(workdir, 1, args))
            ca_file = str(workdir / "state" / "ca" / "ca.pem")
            log = workdir / "server.log"
            boot = BOOT.format(no_gmpy2=args.no_gmpy2, pure=args.pure_python_tls, compiled=False)
            servers = []
            for n in (int(n) for n in args.workers.split(",") if n):
                cfg = write_config(workdir, n, args)
                command = [sys.executable, "-c", boot, "-c", str(cfg)]
                servers.append(Server("tlslite", n, *stack.enter_context(started(command, log))))
                if n == 1 and not args.no_baseline:
                    command = [sys.executable, "scripts/bench_baseline.py", "-c", str(cfg)]
                    servers.append(
                        Server("openssl", 1, *stack.enter_context(started(command, log)))
                    )
            if args.p256_ca:
                cfg = write_config(workdir, 1, args, "ec-p256")
                prepare_state(cfg)
                command = [sys.executable, "-c", boot, "-c", str(cfg)]
                pid, port = stack.enter_context(started(command, log))
                p256_ca = str(workdir / "state-ec-p256" / "ca" / "ca.pem")
                servers.append(Server("tlslite-p256", 1, pid, port, p256_ca))
            if args.compiled_tlslite:
                cfg = write_config(workdir, 1, args)
                env = dict(os.environ, PYTHONPATH=str(args.compiled_tlslite.resolve()))
                boot = BOOT.format(no_gmpy2=args.no_gmpy2, pure=args.pure_python_tls, compiled=True)
                command = [sys.executable, "-c", boot, "-c", str(cfg)]
                pid, port = stack.enter_context(started(command, log, env))
                servers.append(Server("tlslite-compiled", 1, pid, port))
        base = Job("", host, 0, False, 0.0, 0.0, ca_file, args.user, args.password, "", "", ())
        cert, key = client_credentials(base, servers[0].port, workdir)
        base = replace(base, cert_file=cert, key_file=key)
        cells = run_cells(servers, scenarios, base, args)
        floors = "; ".join(
            f"{kind} CA {floor(kind, workdir)}"
            for kind in dict.fromkeys([args.ca_key_type, "ec-p256" if args.p256_ca else ""])
            if kind
        )
    print_results(cells, args.rounds, floors)
    print(f"calibration at the end: {calibration()}; load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
