#!/usr/bin/env python3
"""How long does a normal client wait while a few addresses hold slow connections?

Starts a python-est server subprocess with the default [server] settings (64 workers, the
default per-address share and deadlines), then lets `--addresses` loopback source addresses
(127.0.0.2, 127.0.0.3, ...; all local on Linux) each keep `--per-address` connections open and
slow: a third send nothing, a third trickle a ClientHello one byte every `--interval` seconds,
a third finish the handshake and trickle a request. Each reconnects as soon as it is dropped.
Meanwhile a normal client on 127.0.0.1 fetches /cacerts `--samples` times; the time each fetch
takes, from connect to response, is the result (a failed fetch counts as its timeout).

Prints figures only; it asserts nothing. Runs unchanged against older trees (it uses no
setting they lack), which is how the before/after comparison is made:

    scripts/slow_hold_bench.py                     # 4 addresses x 32 connections
    scripts/slow_hold_bench.py --addresses 12      # more addresses than the share allows
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import est_harness as h

KINDS = ("idle", "hello", "request")


class Holder(threading.Thread):
    """One slow connection from `source` that reconnects whenever the server drops it."""

    def __init__(self, kind: str, source: str, port: int, cafile: Path, args: Args) -> None:
        super().__init__(name=f"hold-{source}-{kind}", daemon=True)
        self.kind, self.source, self.port, self.args = kind, source, port, args
        self.context = h.client_context(cafile)
        self.counts: Counter[str] = Counter()

    def run(self) -> None:
        while not self.args.stop.is_set():
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=60, source_address=(self.source, 0)
                )
            except OSError:
                self.counts["connect failed"] += 1
                self.args.stop.wait(0.1)
                continue
            self.counts["connections"] += 1
            try:
                if self.kind == "idle":
                    self._idle(sock)
                elif self.kind == "hello":
                    self._trickle(sock, self.args.hello)
                else:
                    with self.context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                        self._trickle(tls, h.build_request("GET", f"{h.EST}/cacerts"))
            except (OSError, ssl.SSLError):
                pass  # dropped by the server: reconnect
            finally:
                sock.close()
            self.args.stop.wait(0.05)

    def _idle(self, sock: socket.socket) -> None:
        sock.settimeout(self.args.interval)
        while not self.args.stop.is_set():
            try:
                if not sock.recv(1):
                    return  # closed by the server
            except TimeoutError:
                continue

    def _trickle(self, sock: socket.socket, data: bytes) -> None:
        for index in range(len(data) - 1):  # never the last byte: the message never completes
            sock.send(data[index : index + 1])
            if self.args.stop.wait(self.args.interval):
                return


class Args(argparse.Namespace):
    addresses: int
    per_address: int
    interval: float
    samples: int
    warmup: float
    timeout: float
    json: Path | None
    stop: threading.Event
    hello: bytes


def bench(args: Args, folder: Path) -> dict[str, object]:
    cfg = h.write_config(folder, "[logging]\nlevel = warning\n")
    h.init_state(cfg, {})
    cafile = folder / "state" / "ca" / "ca.pem"
    args.stop, args.hello = threading.Event(), _client_hello()
    sources = [f"127.0.0.{2 + index}" for index in range(args.addresses)]
    with h.Daemon(cfg) as server:
        context = h.client_context(cafile)
        idle_wait = _fetch(server.port, context, args.timeout)
        holders = [
            Holder(KINDS[index % len(KINDS)], source, server.port, cafile, args)
            for source in sources
            for index in range(args.per_address)
        ]
        for holder in holders:
            holder.start()
        time.sleep(args.warmup)  # let them take what workers they can and fill the queue
        threads = server.threads()
        samples = []
        for _ in range(args.samples):
            samples.append(_fetch(server.port, context, args.timeout))
            time.sleep(0.5)
        args.stop.set()
        for holder in holders:
            holder.join(timeout=10)
        server.stop()
    counts: Counter[str] = Counter()
    for holder in holders:
        counts.update(holder.counts)
    waits = [seconds for seconds, _ in samples]
    return {
        "addresses": args.addresses,
        "connections_per_address": args.per_address,
        "interval_s": args.interval,
        "wait_without_holders_s": round(idle_wait[0], 3),
        "waits_s": [round(w, 3) for w in waits],
        "statuses": [status for _, status in samples],
        "median_wait_s": round(statistics.median(waits), 3),
        "max_wait_s": round(max(waits), 3),
        "holder_connections": counts["connections"],
        "server_threads_while_held": threads,
    }


def _fetch(port: int, context: ssl.SSLContext, timeout: float) -> tuple[float, int | str]:
    raw = h.build_request("GET", f"{h.EST}/cacerts")
    started = time.monotonic()
    try:
        status: int | str = h.https(port, raw, context=context, timeout=timeout).status
    except Exception as exc:  # a failed sample: reported, and counted as its time
        status = f"{type(exc).__name__}: {exc}"
    return time.monotonic() - started, status


def _client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addresses", type=int, default=4, help="holding source addresses")
    parser.add_argument("--per-address", type=int, default=32, help="connections each")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between bytes")
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--timeout", type=float, default=60.0, help="per normal fetch")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv, namespace=Args())
    with tempfile.TemporaryDirectory(prefix="est-slowhold-") as folder:
        result = bench(args, Path(folder))
    print(json.dumps(result, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
