#!/usr/bin/env python3
"""Slowloris against a python-est server subprocess: does a legitimate enrollment still get
through within the configured deadlines?

Opens `--connections` connections from one address (127.0.0.2, another loopback address, when
it can be bound) that trickle one byte every `--interval` seconds: half trickle a ClientHello,
half complete the TLS handshake and trickle an HTTP request. Each reconnects as soon as the
server drops it. While they run, a legitimate client on 127.0.0.1 enrolls with HTTP Basic
`--samples` times; its latencies are the result. Passes when every enrollment succeeds within
handshake_timeout + request_timeout + `--slack` seconds.

    scripts/slowloris.py                         # 200 tricklers, deadlines 2 s + 2 s
    scripts/slowloris.py --per-address 0         # without the per-address connection cap
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import est_harness as h

USER, PASSWORD = "legit", "legit password 1"
ATTACKER = "127.0.0.2"


class Trickler(threading.Thread):
    """One slow client that reconnects whenever it is dropped."""

    def __init__(
        self,
        kind: str,
        port: int,
        cafile: Path,
        hello: bytes,
        interval: float,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"trickle-{kind}", daemon=True)
        self.kind, self.port, self.hello, self.interval, self.stop = (
            kind,
            port,
            hello,
            interval,
            stop,
        )
        self.context = h.client_context(cafile)
        self.counts: Counter[str] = Counter()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                sock = socket.create_connection(
                    ("127.0.0.1", self.port), timeout=30, source_address=(ATTACKER, 0)
                )
            except OSError:
                self.counts["connect failed"] += 1
                self.stop.wait(0.1)
                continue
            self.counts["connections"] += 1
            started = time.monotonic()
            try:
                if self.kind == "hello":
                    self._trickle(sock, self.hello)
                else:
                    with self.context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
                        self._trickle(tls, h.build_request("GET", f"{h.EST}/cacerts"))
            except (OSError, ssl.SSLError):
                pass  # dropped by the server: what we wait for
            finally:
                sock.close()
            self.counts["held_ms_total"] += int(1000 * (time.monotonic() - started))
            self.stop.wait(0.05)

    def _trickle(self, sock: socket.socket, data: bytes) -> None:
        for index in range(len(data) - 1):  # never the last byte: the request never completes
            if self.stop.is_set():
                return
            sock.send(data[index : index + 1])
            if self.stop.wait(self.interval):
                return


def slowloris(args: argparse.Namespace, folder: Path) -> dict[str, object]:
    extra = (
        f"[server]\nhandshake_timeout = {args.handshake_timeout}\n"
        f"request_timeout = {args.request_timeout}\n"
        + (f"max_connections_per_address = {args.per_address}\n" if args.per_address >= 0 else "")
        + "[logging]\nlevel = warning\n[profile]\npassword_subjects = any\n"
    )
    cfg = h.write_config(folder, extra)
    h.init_state(cfg, {USER: PASSWORD})
    cafile = folder / "state" / "ca" / "ca.pem"
    hello = _client_hello()
    with h.Daemon(cfg) as server:
        legit = h.client_context(cafile)
        baseline = _enroll_latency(server.port, legit)
        stop = threading.Event()
        kinds = ["hello", "request"] * (args.connections // 2) + ["hello"] * (args.connections % 2)
        tricklers = [
            Trickler(kind, server.port, cafile, hello, args.interval, stop) for kind in kinds
        ]
        for trickler in tricklers:
            trickler.start()
        time.sleep(args.warmup)  # let them fill the worker pool and the listen queue
        peak_threads = server.threads()
        samples = []
        for _ in range(args.samples):
            samples.append(_enroll_latency(server.port, legit))
            time.sleep(0.2)
        stop.set()
        for trickler in tricklers:
            trickler.join(timeout=10)
        alive = server.alive()
        exit_status = server.stop()
    counts: Counter[str] = Counter()
    for trickler in tricklers:
        counts.update(trickler.counts)
    latencies = [s for s, _ in samples]
    budget = args.handshake_timeout + args.request_timeout + args.slack
    held = counts["held_ms_total"] / max(1, counts["connections"])
    checks = {
        "every legitimate enrollment succeeded": all(status == 200 for _, status in samples),
        f"each within {budget:.0f} s (deadlines + slack)": max(latencies) < budget,
        "server alive": alive,
        "clean exit on SIGTERM": exit_status == 0,
    }
    return {
        "connections": args.connections,
        "per_address_cap": args.per_address,
        "handshake_timeout": args.handshake_timeout,
        "request_timeout": args.request_timeout,
        "baseline_enroll_s": round(baseline[0], 3),
        "enroll_s": [round(s, 3) for s in latencies],
        "statuses": [status for _, status in samples],
        "trickler_connections": counts["connections"],
        "trickler_mean_hold_s": round(held / 1000, 2),
        "server_threads_under_attack": peak_threads,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _enroll_latency(port: int, context: ssl.SSLContext) -> tuple[float, int | str]:
    raw = h.enroll_request(
        f"{h.EST}/simpleenroll", h.csr_body(h.make_csr("legit")[0]), h.basic(USER, PASSWORD)
    )
    started = time.monotonic()
    try:
        status: int | str = h.https(port, raw, context=context, timeout=120).status
    except Exception as exc:  # reported as a failed sample
        status = f"{type(exc).__name__}: {exc}"
    return time.monotonic() - started, status


def _client_hello() -> bytes:
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Slowloris against python-est.")
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.5, help="seconds between bytes")
    parser.add_argument("--handshake-timeout", type=float, default=2.0)
    parser.add_argument("--request-timeout", type=float, default=2.0)
    parser.add_argument(
        "--per-address",
        type=int,
        default=-1,
        help="[server] max_connections_per_address (-1: leave the default, 0: no cap)",
    )
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--warmup", type=float, default=1.5)
    parser.add_argument("--slack", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="est-slowloris-") as folder:
        result = slowloris(args, Path(folder))
    print(json.dumps(result, indent=2), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
