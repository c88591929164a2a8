#!/usr/bin/env python3
"""Handshake cost of the TLS server: server CPU per handshake and handshakes per second.

The server runs in a child process (one per server key type and engine) so that its CPU time
can be read from /proc/<pid>/stat without counting the clients. Clients are OpenSSL-based:
Python `ssl` for the certificate suites, curl for SRP (many URLs per curl run; curl resumes by
session ID unless told `--no-sessionid`). `--engine python` runs tlslite without the OpenSSL
fast path (`TlsEndpoint(accelerated=False)`, tickets sealed by tlslite's own AES-GCM), `both`
runs each cell with both. Prints figures; asserts nothing. The whole-service benchmark is
`scripts/bench.py`.

    python scripts/bench_tls.py [--seconds 3] [--engine fast|python|both] [--py-spy DIR]
    python scripts/bench_tls.py --ab-suite-cache [--ab-blocks 12] [--ab-size 120]
    python scripts/bench_tls.py --engine fast --compiled-tlslite DIR [--rounds 3]

`--compiled-tlslite DIR` adds the engine `compiled`: the fast path with tlslite imported from
DIR, a Cython-compiled copy of the installed tlslite (`scripts/build_compiled_tlslite.py`);
`--rounds N` repeats every cell N times, the engines alternating, so that both see the same
machine.

`--py-spy DIR` samples the server during each cell (`py-spy record --gil`, attached to the
child, so only Python and C called without releasing the GIL: OpenSSL's RSA and ECDSA signing
release it and are missing) into DIR and prints where the handshake's time went, by phase.
"""

from __future__ import annotations

import argparse
import ipaddress
import itertools
import os
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.ca import CertificateAuthority, certificate_pem
from python_est.config import TlsConfig
from python_est.keys import KeyType
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.policy import PeerIdentity
from python_est.server import EstServer
from python_est.tls import TlsEndpoint
from python_est.users import UserStore

USER, PASSWORD = "bench", "bench password"
REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def report(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
    return text_response(200, f"resumed={peer.tls.resumed}")


def make_endpoint(key: str, workdir: Path, accelerated: bool) -> TlsEndpoint:
    """A CA and server certificate in `workdir` (ca.pem for the clients), an SRP user."""
    ca = CertificateAuthority.create(
        common_name="Bench CA", key_type=KeyType.EC_P256, validity_days=2
    )
    (workdir / "ca.pem").write_bytes(certificate_pem(ca.root))
    cert, private_key = ca.issue_server_certificate(
        common_name="127.0.0.1",
        dns_names=[],
        ip_addresses=[ipaddress.ip_address("127.0.0.1")],
        key_type=KeyType.RSA_2048 if key == "rsa" else KeyType.EC_P256,
        validity_days=1,
    )
    path = workdir / f"users-{key}-{accelerated}-{os.getpid()}.srp"  # one per server process
    users = UserStore.create(path, reload_interval=None)
    users.add(USER, PASSWORD)
    return TlsEndpoint(
        cert_chain=[cert, *ca.chain[:-1]],
        private_key=private_key,
        verifier_db=users.srp_verifiers(),
        chain_validator=None,
        params=TlsConfig(),
        accelerated=accelerated,
    )


def serve(key: str, workdir: Path, accelerated: bool) -> None:
    """Child process: serve until stdin closes; print the port first."""
    endpoint = make_endpoint(key, workdir, accelerated)
    server = EstServer(
        address="127.0.0.1",
        port=0,
        handshaker=endpoint,
        handler=report,
        max_connections=8,
        backlog=128,
        handshake_timeout=10,
        request_timeout=10,
        max_body_bytes=1024,
    )
    thread = server.start_in_thread()
    import tlslite.tlsconnection

    compiled = not tlslite.tlsconnection.__file__.endswith(".py")
    print(server.server_address[1], "compiled" if compiled else "python", flush=True)
    sys.stdin.read()
    server.shutdown()
    thread.join()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ssl_client(port: int, cafile: Path, ciphers: str, resume: bool) -> Callable[[], int]:
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(ciphers)
    session: list[ssl.SSLSession] = []

    def once() -> int:
        with socket.create_connection(("127.0.0.1", port)) as raw:
            # As curl does; otherwise Nagle holds the request behind the client's Finished.
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with ctx.wrap_socket(
                raw, server_hostname="127.0.0.1", session=session[0] if session else None
            ) as tls:
                tls.sendall(REQUEST)
                while tls.recv(4096):
                    pass
                if resume and not session:
                    session.append(tls.session)  # type: ignore[arg-type]
                reused = 1 if tls.session_reused else 0
        return reused

    return once


def curl_client(port: int, cipher: str, resume: bool, per_run: int = 25) -> Callable[[], int]:
    curl = shutil.which("curl")
    assert curl is not None
    url = f"https://127.0.0.1:{port}/"
    args = [curl, "-sS", "-k", "--tlsauthtype", "SRP", "--tlsuser", USER, "--tlspassword"]
    args += [PASSWORD, "--ciphers", cipher]
    if not resume:
        args.append("--no-sessionid")

    def batch() -> int:
        out = subprocess.run(
            [*args, *[url] * per_run], capture_output=True, text=True, timeout=60, check=True
        )
        return out.stdout.count("resumed=True")

    return batch


def measure(pid: int, client: Callable[[], int], seconds: float, per_call: int) -> str:
    client()  # warm-up (and, for resumption, the full handshake that makes the session)
    count = reused = 0
    cpu = cpu_seconds(pid)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        reused += client()
        count += per_call
    wall = time.perf_counter() - start
    cpu = cpu_seconds(pid) - cpu
    return (
        f"{count:6d} {count / wall:8.1f}/s {cpu / count * 1000:9.2f} ms"
        f" {reused / count * 100:6.0f}%"
    )


# Handshake phases for --py-spy: the first phase with a function in a sample's stack takes it.
PHASES: list[tuple[str, tuple[str, ...]]] = [
    ("session ticket (seal; open and check)", ("_serverSendTickets", "_ticket_to_session")),
    ("ClientHello parsing", ("ClientHello.parse",)),
    ("cipher-suite lists", ("_filterSuites", "filterForVersion")),
    ("ServerKeyExchange (key share, signature)", ("makeServerKeyExchange",)),
    ("ClientKeyExchange (ECDH or SRP premaster)", ("processClientKeyExchange",)),
    ("CertificateRequest", ("CertificateRequest.create", "_sigHashesToList")),
    (
        "Finished exchange (key schedule, CCS, Finished)",
        ("_calcPendingStates", "_calculate_master_secret", "Finished"),
    ),
    ("ClientHello checks, resumption, suite choice", ("_serverGetClientHello",)),
    ("SRP", ("SRPKeyExchange", "_serverSRPKeyExchange")),
    ("other messages sent (serialize, hash, protect)", ("_sendMsg",)),
    ("other records read (read, decrypt, parse)", ("_getMsg", "_getNextRecord")),
    ("rest of tlslite's handshake (state, ServerHello, cache)", ("handshakeServer",)),
    ("python_est.tls (ClientHello peek, identity, deadlines)", ("python_est/tls/",)),
    ("server loop, HTTP, close", ("python_est/",)),
]


def find_py_spy() -> str | None:
    """py-spy on PATH or next to this Python (a virtualenv's bin)."""
    beside = Path(sys.executable).with_name("py-spy")
    return shutil.which("py-spy") or (str(beside) if beside.exists() else None)


@contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample `pid` into `out` (py-spy raw format) while the block runs; nothing if None."""
    if out is None:
        yield
        return
    command = [
        find_py_spy() or "py-spy",
        "record",
        "--gil",
        "--format",
        "raw",
        "-r",
        "250",
        "-o",
        str(out),
    ]
    recorder = subprocess.Popen(
        [*command, "--pid", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        recorder.wait(timeout=60)


def phases(path: Path) -> str:
    """The share of the sampled time in each handshake phase."""
    counts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            phase = next((n for n, keys in PHASES if any(k in stack for k in keys)), "other")
            counts[phase] += int(count)
    total = sum(counts.values()) or 1
    return "\n".join(f"    {n / total * 100:5.1f}%  {name}" for name, n in counts.most_common())


AB_SUITE = "ECDHE-RSA-AES128-GCM-SHA256"


def ab_client(port: int, workdir: Path, mode: str, count: int) -> None:
    """Child process of --ab-suite-cache: `count` handshakes, each closed at once."""
    client = ssl_client(port, workdir / "ca.pem", AB_SUITE, resume=mode == "resumed")
    for _ in range(count):
        client()


def ab_suite_cache(workdir: Path, blocks: int, size: int) -> None:
    """In-process A/B of the suite memo: server CPU per handshake with it on and off.

    One server (this process, `TlsEndpoint.handshake` in a loop, no server loop) and one client
    process; the memo is switched between interleaved blocks of `size` handshakes, so drift of
    a shared machine falls on both sides alike. Prints the median of each side.
    """
    from python_est.tls.fastsuites import cached_suites, use_cached_suites

    endpoint = make_endpoint("rsa", workdir, accelerated=True)
    was = cached_suites()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        for mode in ("full", "resumed"):
            count = blocks * 2 * size + 1  # one more: a warm-up (and the session to resume)
            command = [sys.executable, __file__, "--ab-client", mode, "--workdir", str(workdir)]
            child = subprocess.Popen([*command, "--ab-port", str(port), "--ab-count", str(count)])
            listener.settimeout(30)

            def handshake() -> None:
                sock, address = listener.accept()
                stream, _ = endpoint.handshake(sock, address[0], time.monotonic() + 10)
                stream.close()

            handshake()
            cpu: dict[bool, list[float]] = {True: [], False: []}
            for block in range(blocks):
                for on in (True, False) if block % 2 == 0 else (False, True):
                    use_cached_suites(on)
                    start = time.process_time()
                    for _ in range(size):
                        handshake()
                    cpu[on].append((time.process_time() - start) / size * 1000)
            child.wait(timeout=60)
            off_ms, on_ms = statistics.median(cpu[False]), statistics.median(cpu[True])
            print(
                f"suite memo, {mode:7}: off {off_ms:6.3f} ms, on {on_ms:6.3f} ms,"
                f" on/off {on_ms / off_ms:5.3f}"
                f" (medians of {blocks} blocks of {size}; load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    use_cached_suites(was)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each cell")
    parser.add_argument("--engine", choices=["fast", "python", "both"], default="both")
    parser.add_argument("--py-spy", type=Path, metavar="DIR", help="profile each cell into DIR")
    parser.add_argument(
        "--ab-suite-cache",
        action="store_true",
        help="in-process A/B of the memoized suite lists (server CPU per handshake, on vs off)",
    )
    parser.add_argument("--ab-blocks", type=int, default=12, help="A/B: blocks per side")
    parser.add_argument("--ab-size", type=int, default=120, help="A/B: handshakes per block")
    parser.add_argument(
        "--compiled-tlslite",
        type=Path,
        metavar="DIR",
        help="add the engine 'compiled': tlslite from DIR (scripts/build_compiled_tlslite.py)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat every cell, alternating")
    parser.add_argument("--ab-client", choices=["full", "resumed"], help=argparse.SUPPRESS)
    parser.add_argument("--ab-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ab-count", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve", choices=["rsa", "ec"], help=argparse.SUPPRESS)
    parser.add_argument("--python-engine", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.workdir, accelerated=not args.python_engine)
        return
    if args.ab_client:
        ab_client(args.ab_port, args.workdir, args.ab_client, args.ab_count)
        return
    if args.ab_suite_cache:
        with tempfile.TemporaryDirectory() as tmp:
            ab_suite_cache(Path(tmp), args.ab_blocks, args.ab_size)
        return

    from tlslite.utils import cryptomath

    print(f"gmpy2: {'yes' if cryptomath.GMPY2_LOADED else 'no'}", end="; ")
    print(f"M2Crypto: {'yes' if cryptomath.m2cryptoLoaded else 'no'}; CPUs: {os.cpu_count()}")
    print(f"{'cell':42} {'hs':>6} {'rate':>10} {'CPU/hs':>12} {'resumed':>7}")
    curl = shutil.which("curl")
    engines = ["fast", "python"] if args.engine == "both" else [args.engine]
    if args.compiled_tlslite:
        if not (args.compiled_tlslite / "tlslite").is_dir():
            parser.error(f"--compiled-tlslite: no tlslite in {args.compiled_tlslite}")
        engines.append("compiled")
    if args.py_spy:
        if find_py_spy() is None:
            parser.error("--py-spy needs py-spy (pip install py-spy)")
        args.py_spy.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for _, (key, suite), engine in itertools.product(
            range(args.rounds),
            (("rsa", "ECDHE-RSA-AES128-GCM-SHA256"), ("ec", "ECDHE-ECDSA-AES128-GCM-SHA256")),
            engines,
        ):
            command = [sys.executable, __file__, "--serve", key, "--workdir", str(workdir)]
            if engine == "python":
                command.append("--python-engine")
            env = dict(os.environ)
            if engine == "compiled":
                path = [str(args.compiled_tlslite), env.get("PYTHONPATH", "")]
                env["PYTHONPATH"] = os.pathsep.join(p for p in path if p)
            child = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
            )
            assert child.stdout is not None and child.stdin is not None
            port_text, kind = child.stdout.readline().split()
            port = int(port_text)
            if (kind == "compiled") != (engine == "compiled"):
                parser.error(f"engine {engine}: the server imported a {kind} tlslite")
            cells: list[tuple[str, Callable[[], int], int]] = []
            for resume in (False, True):
                mode = "resumed" if resume else "full"
                client = ssl_client(port, workdir / "ca.pem", suite, resume)
                cells.append((f"{suite} {mode}", client, 1))
            if key == "rsa" and curl:
                for cipher in ("SRP-AES-256-CBC-SHA", "SRP-RSA-AES-256-CBC-SHA"):
                    for resume in (False, True):
                        mode = "resumed" if resume else "full"
                        cells.append((f"{cipher} {mode}", curl_client(port, cipher, resume), 25))
            for name, client, per_call in cells:
                out = None
                if args.py_spy:
                    out = args.py_spy / f"{engine}-{name.replace(' ', '-')}.txt"
                with py_spy(child.pid, out):
                    figures = measure(child.pid, client, args.seconds, per_call)
                print(f"{engine:6} {name:35} {figures}", flush=True)
                if out is not None and out.exists():
                    print(phases(out), flush=True)
            child.stdin.close()
            child.wait(timeout=30)
    if not curl:
        print("curl not found: SRP cells skipped")


if __name__ == "__main__":
    main()
