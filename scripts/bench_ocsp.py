#!/usr/bin/env python3
"""OCSP responses per second: the responder alone, then `python-est serve` over HTTP, in one run.

Usage, from the repository root:

    python scripts/bench_ocsp.py [--seconds 3] [--clients 1 4] [--certificates 500]

In process: `OcspResponder.answer` on a SQLite ledger of --certificates issued certificates,
each request for another of them, for an EC P-256 and an RSA-2048 CA, signed by the CA or by a
delegated P-256 signer. The baseline rows, measured the same way, are requests the responder
answers without a ledger lookup or a signature (an unknown issuer: `unauthorized`; garbage:
`malformedRequest`), so the difference is the lookup and the signature.

Over the network: a real daemon (P-256 CA) with the plain-HTTP listener on; --clients threads
send OCSP POSTs back to back, one connection per request (the server closes after each), to
the plain port and over TLS to the EST port. The baselines, measured the same way in the same
run: a malformed request on the plain port (the HTTP path without lookup or signature) and
GET /healthz over TLS (the TLS path without OCSP; cached health, so it is mostly the handshake).

It prints figures and asserts nothing: a measurement, not a test. Each row runs for --seconds.
"""

from __future__ import annotations

import argparse
import re
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from est_harness import Daemon, prepare_state
from python_est.ca import CertificateAuthority
from python_est.ca.ocsp import issue_responder
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate, SqliteLedger
from python_est.ops.ocsp import OcspAuthority, OcspResponder

PLAIN_PORT = re.compile(r"OCSP over plain HTTP on 127\.0\.0\.1:(\d+)")


def rate(seconds: float, work: Callable[[int], None], clients: int = 1) -> float:
    """Calls of `work(i)` per second over `seconds`, from `clients` threads."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def loop(slot: int) -> None:
        index = slot
        while time.monotonic() < stop:
            work(index)
            index += clients
            done[slot] += 1

    threads = [threading.Thread(target=loop, args=(slot,)) for slot in range(clients)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.monotonic() - started)


def requests_for(ca: CertificateAuthority, ledger: SqliteLedger, count: int) -> list[bytes]:
    made = []
    for index in range(count):
        cert, _ = ca.issue_client_certificate(common_name=f"bench {index}")
        ledger.record(
            IssuedCertificate.from_certificate(
                cert, requester="bench", auth_method="admin", label="", operation="simpleenroll"
            )
        )
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, ca.certificate, hashes.SHA1())
        made.append(request.build().public_bytes(serialization.Encoding.DER))
    return made


def in_process(seconds: float, count: int, work_dir: Path) -> None:
    print("In process: OcspResponder.answer, one thread (answers/s)")
    stranger = CertificateAuthority.create_root(
        common_name="Stranger", key_type=KeyType.EC_P256, validity_days=30
    )
    foreign = requests_for(stranger, SqliteLedger(work_dir / "stranger.sqlite3"), 1)[0]
    for key_type in (KeyType.EC_P256, KeyType.RSA_2048):
        ca = CertificateAuthority.create_root(
            common_name=f"Bench {key_type.value}", key_type=key_type, validity_days=30
        )
        with SqliteLedger(work_dir / f"{key_type.value}.sqlite3") as ledger:
            requests = requests_for(ca, ledger, count)
            for name, signer in (("CA signs", None), ("delegated P-256", issue_responder(ca))):
                responder = OcspResponder(
                    [OcspAuthority(ca, signer)], ledger, validity=timedelta(hours=1)
                )
                per_s = rate(seconds, answering(responder, requests))
                print(f"  {key_type.value:9} {name:16} good         {per_s:9.0f}")
            responder = OcspResponder([OcspAuthority(ca)], ledger, validity=timedelta(hours=1))
            per_s = rate(seconds, answering(responder, [foreign]))
            print(f"  {key_type.value:9} {'baseline':16} unauthorized {per_s:9.0f}")
            per_s = rate(seconds, answering(responder, [b"garbage"]))
            print(f"  {key_type.value:9} {'baseline':16} malformed    {per_s:9.0f}")


def answering(responder: OcspResponder, requests: list[bytes]) -> Callable[[int], None]:
    """Work for `rate`: call i answers request i (cycling through `requests`)."""

    def work(index: int) -> None:
        responder.answer(requests[index % len(requests)])

    return work


def post(body: bytes, path: str = "/ocsp") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/ocsp-request\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body


def exchange(sock: socket.socket, raw: bytes) -> None:
    sock.sendall(raw)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    if not data.startswith(b"HTTP/1.1 200 "):
        raise RuntimeError(f"unexpected answer: {data[:80]!r}")


def over_network(seconds: float, clients: list[int], count: int, work_dir: Path) -> None:
    config = prepare_state(
        work_dir / "server",
        "[ocsp]\nhttp_enabled = yes\nhttp_port = 0\n[server]\nmax_connections = 64\n"
        "max_connections_per_address = 0\n",
    )
    state = work_dir / "server" / "state"
    ca = CertificateAuthority.from_pem(
        (state / "ca" / "ca.pem").read_bytes(), (state / "ca" / "ca.key").read_bytes()
    )
    with SqliteLedger(state / "ledger.sqlite3") as ledger:
        requests = requests_for(ca, ledger, count)
    context = ssl.create_default_context(cafile=str(state / "ca" / "ca.pem"))
    with Daemon(config) as daemon:
        daemon.start()
        match = PLAIN_PORT.search(daemon.wait_for(PLAIN_PORT.pattern)[0])
        assert match is not None
        plain_port, tls_port = int(match.group(1)), daemon.port

        def plain(raw: bytes) -> None:
            with socket.create_connection(("127.0.0.1", plain_port), timeout=30) as sock:
                exchange(sock, raw)

        def tls(raw: bytes) -> None:
            with socket.create_connection(("127.0.0.1", tls_port), timeout=30) as bare:
                with context.wrap_socket(bare, server_hostname="localhost") as sock:
                    exchange(sock, raw)  # type: ignore[arg-type]

        healthz = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        print("Over the network: python-est serve (P-256 CA), one connection per request")
        print("  (responses/s; the client threads share this process, the server runs apart)")
        for n in clients:
            per_s = rate(seconds, lambda i: plain(post(requests[i % count])), n)
            print(f"  plain HTTP  POST good               {n:2} client(s) {per_s:8.0f}")
            per_s = rate(seconds, lambda i: plain(post(b"garbage")), n)
            print(f"  plain HTTP  baseline: malformed     {n:2} client(s) {per_s:8.0f}")
            per_s = rate(seconds, lambda i: tls(post(requests[i % count])), n)
            print(f"  TLS (EST)   POST good               {n:2} client(s) {per_s:8.0f}")
            per_s = rate(seconds, lambda i: tls(healthz), n)
            print(f"  TLS (EST)   baseline: GET /healthz  {n:2} client(s) {per_s:8.0f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--certificates", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ocsp-") as tmp:
        in_process(args.seconds, args.certificates, Path(tmp))
        over_network(args.seconds, args.clients, args.certificates, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
