#!/usr/bin/env python3
"""An independent EST load generator: N processes of plain Python `ssl` clients.

Written apart from `scripts/bench_load.py` (it shares no code with it, nor with the product) so
that the benchmark's figures can be checked with a generator that makes none of its choices:
each process opens a new TCP connection and a full TLS handshake per request with a default
client context (`ssl.create_default_context`: certificate and host name verified against the
CA file), sends the request the way `http.client` does (one write of head and body, no
TCP_NODELAY of its own), reads the response to the server's close and checks the status.

    python scripts/bench_ssl_clients.py --port 8443 --cafile STATE/ca/ca.pem \\
        --scenario enroll-basic --user bench --password PW --processes 4 --seconds 5

It prints "window start" when the measured window opens and "window end" when it closes (so a
caller can sample the server's CPU exactly then), then one JSON line: requests, errors by kind,
the window, latency percentiles and the generator's own CPU seconds in the window.
Used by `scripts/bench.py --generator independent`; prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import ssl
import sys
import time
from collections import Counter

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TARGETS = {
    "handshake": None,
    "cacerts": ("GET", "/.well-known/est/cacerts"),
    "enroll-basic": ("POST", "/.well-known/est/simpleenroll"),
}
CSRS_PER_PROCESS = 8


def _csrs(user: str) -> list[bytes]:
    """Base64 P-256 PKCS#10 requests for CN=user, one key each."""
    bodies = []
    for _ in range(CSRS_PER_PROCESS):
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, user)])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        bodies.append(base64.b64encode(csr.public_bytes(serialization.Encoding.DER)))
    return bodies


def _client(args: argparse.Namespace, start: float, end: float, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    context = ssl.create_default_context(cafile=args.cafile)
    target = TARGETS[args.scenario]
    headers = {"Connection": "close"}
    bodies: list[bytes] = [b""]
    if args.scenario == "enroll-basic":
        token = base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
        headers |= {"Authorization": f"Basic {token}", "Content-Type": "application/pkcs10"}
        bodies = _csrs(args.user)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    sent = 0
    cpu_at_start: float | None = None
    while (now := time.monotonic()) < end:
        if cpu_at_start is None and now >= start:
            cpu_at_start = time.process_time()
        began = time.perf_counter()
        error = None
        connection = http.client.HTTPSConnection(args.host, args.port, context=context, timeout=30)
        try:
            connection.connect()  # TCP and the full TLS handshake, certificate verified
            if target is not None:
                method, path = target
                body = bodies[sent % len(bodies)] if method == "POST" else None
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                response.read()
                if response.status != 200:
                    error = f"http {response.status}"
        except ssl.SSLError as exc:
            error = f"tls {exc.reason}"
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
        finally:
            connection.close()
        sent += 1
        if now < start:
            continue  # warm-up
        if error is None:
            latencies.append(time.perf_counter() - began)
        else:
            errors[error] += 1
    cpu = time.process_time() - cpu_at_start if cpu_at_start is not None else 0.0
    out.put((latencies, dict(errors), cpu))


def _percentile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cafile", required=True, help="the EST CA's certificate (PEM)")
    parser.add_argument("--scenario", choices=sorted(TARGETS), default="enroll-basic")
    parser.add_argument("--user", default="")
    parser.add_argument("--password", default="")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    args = parser.parse_args()
    start = time.monotonic() + args.warmup + 0.5  # time for the processes to start
    end = start + args.seconds
    results: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    processes = [
        multiprocessing.Process(target=_client, args=(args, start, end, results))
        for _ in range(args.processes)
    ]
    for process in processes:
        process.start()
    time.sleep(max(0.0, start - time.monotonic()))
    print("window start", flush=True)
    time.sleep(max(0.0, end - time.monotonic()))
    print("window end", flush=True)
    collected = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join()
    latencies = sorted(x for lat, _, _ in collected for x in lat)
    errors: Counter[str] = Counter()
    for _, errs, _ in collected:
        errors.update(errs)
    summary = {
        "scenario": args.scenario,
        "processes": args.processes,
        "seconds": args.seconds,
        "requests": len(latencies),
        "errors": dict(errors),
        "p50": _percentile(latencies, 0.50),
        "p90": _percentile(latencies, 0.90),
        "p99": _percentile(latencies, 0.99),
        "cpu": sum(cpu for _, _, cpu in collected),
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
