#!/usr/bin/env python3
"""Bounded load against a python-est server subprocess, then proof that nothing was lost.

Starts `python main.py -c CFG` on 127.0.0.1 (fresh state in a temporary folder), then runs
`--clients` concurrent clients until `--seconds` have passed or `--max-requests` requests have
been started, whichever comes first. Each client mixes:

  enroll    /simpleenroll with HTTP Basic (Python ssl)
  reenroll  /simplereenroll with the client's current certificate (falls back to enroll)
  cacerts   /cacerts
  srp       /simpleenroll over TLS-SRP (tlslite-ng client, in-process)

and reports: unexpected errors (anything but 200; no rate limit is configured to trigger),
every certificate a client received is in the ledger and the ledger holds nothing unclaimed
beyond the requests that were in flight when they failed, all serials unique,
`python-est ledger verify --expect` passes, server RSS before/peak/after, and file descriptors
and threads back to their idle levels. Exit status 0 when every check passes.

    scripts/soak.py                       # 200 clients, 60 s
    scripts/soak.py --clients 50 --seconds 10 --json result.json
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

import est_harness as h

USER, PASSWORD = "soak", "soak password 1"
WEIGHTS = {"enroll": 35, "reenroll": 25, "cacerts": 25, "srp": 15}
EXTRA_CONFIG = """\
[logging]
level = info
[profile]
password_subjects = any
[auth]
max_failures = 1000
"""
IDLE_WAIT_S = 30.0


@dataclass
class Outcome:
    op: str
    status: int | None  # None: no HTTP response (an exception)
    seconds: float
    serials: list[int] = field(default_factory=list)
    error: str = ""


@dataclass
class Identity:
    cert_path: Path
    key_path: Path


class Budget:
    """The count and time limits shared by every client."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.end = time.monotonic() + seconds
        self.left = max_requests
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0 or time.monotonic() >= self.end:
                return False
            self.left -= 1
            return True


class Client:
    def __init__(self, index: int, port: int, cafile: Path, folder: Path, seed: int) -> None:
        self.name = f"soak-client-{index}"
        # Each client its own loopback address, as devices have theirs: the server caps
        # connections per address ([server] max_connections_per_address).
        self.source = f"127.1.{(index + 1) // 250}.{(index + 1) % 250 + 1}"
        self.port = port
        self.cafile = cafile
        self.folder = folder
        self.random = random.Random(seed)
        self.plain = h.client_context(cafile)
        self.identity: Identity | None = None
        self.outcomes: list[Outcome] = []

    def run(self, budget: Budget) -> None:
        ops, weights = list(WEIGHTS), list(WEIGHTS.values())
        while budget.take():
            op = self.random.choices(ops, weights)[0]
            if op == "reenroll" and self.identity is None:
                op = "enroll"
            self.outcomes.append(self.one(op))

    def one(self, op: str) -> Outcome:
        started = time.monotonic()
        try:
            reply = getattr(self, "_" + op)()
        except Exception as exc:  # every failure is counted, none may stop the client
            return Outcome(
                op, None, time.monotonic() - started, error=f"{type(exc).__name__}: {exc}"
            )
        elapsed = time.monotonic() - started
        if reply.status != 200:
            text = reply.body[:120].decode("latin-1")
            return Outcome(op, reply.status, elapsed, error=f"HTTP {reply.status}: {text}")
        serials = [] if op == "cacerts" else [c.serial_number for c in reply.certificates()]
        return Outcome(op, 200, elapsed, serials)

    def _cacerts(self) -> h.Reply:
        raw = h.build_request("GET", f"{h.EST}/cacerts")
        return h.https(self.port, raw, context=self.plain, source=self.source)

    def _enroll(self) -> h.Reply:
        key = h.make_key()
        raw = h.enroll_request(
            f"{h.EST}/simpleenroll",
            h.csr_body(h.make_csr(self.name, key)[0]),
            h.basic(USER, PASSWORD),
        )
        reply = h.https(self.port, raw, context=self.plain, source=self.source)
        self._keep(reply, key)
        return reply

    def _reenroll(self) -> h.Reply:
        assert self.identity is not None
        context = h.client_context(self.cafile, (self.identity.cert_path, self.identity.key_path))
        key = h.make_key()
        raw = h.enroll_request(f"{h.EST}/simplereenroll", h.csr_body(h.make_csr(self.name, key)[0]))
        reply = h.https(self.port, raw, context=context, source=self.source)
        self._keep(reply, key)
        return reply

    def _srp(self) -> h.Reply:
        raw = h.enroll_request(f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(self.name)[0]))
        return h.srp(self.port, USER, PASSWORD, raw, source=self.source)

    def _keep(self, reply: h.Reply, key: ec.EllipticCurvePrivateKey) -> None:
        if reply.status == 200:
            cert = reply.certificates()[0]
            paths = h.write_credentials(self.folder, self.name, cert, key)
            self.identity = Identity(*paths)


class Sampler(threading.Thread):
    """Samples the server's RSS, threads and fds once a second for the peaks."""

    def __init__(self, server: h.Daemon) -> None:
        super().__init__(name="sampler", daemon=True)
        self.server = server
        self.stop = threading.Event()
        self.peak = {"rss_kib": 0, "threads": 0, "fds": 0}

    def run(self) -> None:
        while not self.stop.wait(1.0):
            self.sample()

    def sample(self) -> None:
        try:
            now = {
                "rss_kib": self.server.rss_kib(),
                "threads": self.server.threads(),
                "fds": self.server.fds(),
            }
        except (OSError, KeyError):
            return  # the process is gone; the checks report it
        for key, value in now.items():
            self.peak[key] = max(self.peak[key], value)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def wait_idle(server: h.Daemon, fds: int) -> float:
    """Seconds until the server's fd count is back to `fds` (connections close with a linger)."""
    started = time.monotonic()
    while time.monotonic() - started < IDLE_WAIT_S:
        if server.fds() <= fds:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def soak(
    clients: int, seconds: float, max_requests: int, folder: Path, extra_config: str = ""
) -> dict[str, object]:
    cfg = h.write_config(folder, EXTRA_CONFIG, extra_config)
    h.init_state(cfg, {USER: PASSWORD})
    cafile = folder / "state" / "ca" / "ca.pem"
    max_connections = 64  # the [server] default, which the config leaves alone
    keys = folder / "clients"
    keys.mkdir(exist_ok=True)
    with h.Daemon(cfg) as server:
        # Warm up every path once (imports, first SQLite pages, pool threads), then measure idle.
        warm = Client(-1, server.port, cafile, keys, 0)
        for op in ("cacerts", "enroll", "reenroll", "srp"):
            warm.outcomes.append(warm.one(op))
        time.sleep(1.5)  # closing connections linger up to 1 s
        idle = {"rss_kib": server.rss_kib(), "threads": server.threads(), "fds": server.fds()}

        sampler = Sampler(server)
        sampler.start()
        budget = Budget(seconds, max_requests)
        workers = [Client(i, server.port, cafile, keys, i) for i in range(clients)]
        threads = [threading.Thread(target=w.run, args=(budget,), daemon=True) for w in workers]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=max(1.0, budget.end - time.monotonic()) + 120)
        elapsed = time.monotonic() - started
        stuck = sum(thread.is_alive() for thread in threads)
        sampler.stop.set()
        sampler.sample()

        settle = wait_idle(server, idle["fds"])
        after = {"rss_kib": server.rss_kib(), "threads": server.threads(), "fds": server.fds()}
        alive = server.alive()
        received = [s for w in [warm, *workers] for o in w.outcomes for s in o.serials]
        in_ledger = h.ledger_serials(folder / "state" / "ledger.sqlite3")
        expect = folder / "received-serials.txt"
        expect.write_text("".join(f"{s:X}\n" for s in received))
        verify = h.run_cli(cfg, "ledger", "verify", "--expect", str(expect))
        exit_status = server.stop()
        log_text = server.log()

    outcomes = [o for w in workers for o in w.outcomes]
    unexpected = [o for o in outcomes + warm.outcomes if o.status != 200]
    # A request that failed without a response may still have been issued and recorded.
    in_flight_failures = sum(1 for o in outcomes if o.status is None and o.op != "cacerts")
    missing = sorted(set(received) - set(in_ledger))
    unclaimed = sorted(set(in_ledger) - set(received))
    by_op = Counter(o.op for o in outcomes)
    latency = {
        op: {
            "p50_ms": round(1000 * percentile([o.seconds for o in outcomes if o.op == op], 0.5), 1),
            "p95_ms": round(
                1000 * percentile([o.seconds for o in outcomes if o.op == op], 0.95), 1
            ),
            "max_ms": round(1000 * max([o.seconds for o in outcomes if o.op == op], default=0), 1),
        }
        for op in WEIGHTS
    }
    checks = {
        "no unexpected errors": not unexpected,
        "clients finished": stuck == 0,
        "server alive": alive,
        "every received certificate is in the ledger": not missing,
        "nothing unclaimed beyond in-flight failures": len(unclaimed) <= in_flight_failures,
        "serials unique": len(received) == len(set(received))
        and len(in_ledger) == len(set(in_ledger)),
        "ledger verify passes": verify.returncode == 0,
        "fds back to idle": after["fds"] <= idle["fds"],
        "threads within the idle level plus the worker pool": after["threads"]
        <= idle["threads"] + max_connections,
        "no tracebacks in the server log": "Traceback" not in log_text,
        "clean exit on SIGTERM": exit_status == 0,
    }
    return {
        "clients": clients,
        "seconds": seconds,
        "max_requests": max_requests,
        "elapsed_s": round(elapsed, 1),
        "requests": len(outcomes),
        "requests_per_s": round(len(outcomes) / elapsed, 1) if elapsed else 0.0,
        "by_op": dict(by_op),
        "latency": latency,
        "unexpected_errors": len(unexpected),
        "error_samples": [f"{o.op}: {o.error}" for o in unexpected[:10]],
        # Connections the server cut as idle holders (docs/security.md §8); a soak client
        # never holds one idle, so each is also an unexpected error above.
        "evictions": log_text.count("evicted while waiting for the client"),
        "certificates_received": len(received),
        "ledger_certificates": len(in_ledger),
        "missing_from_ledger": len(missing),
        "unclaimed_in_ledger": len(unclaimed),
        "in_flight_failures": in_flight_failures,
        "ledger_verify": verify.stdout.strip() or verify.stderr.strip(),
        "rss_kib": {
            "idle": idle["rss_kib"],
            "peak": sampler.peak["rss_kib"],
            "after": after["rss_kib"],
        },
        "threads": {
            "idle": idle["threads"],
            "peak": sampler.peak["threads"],
            "after": after["threads"],
        },
        "fds": {"idle": idle["fds"], "peak": sampler.peak["fds"], "after": after["fds"]},
        "settle_s": round(settle, 1),
        "server_exit_status": exit_status,
        "checks": checks,
        "passed": all(checks.values()),
    }


def report(result: dict[str, object]) -> str:
    rss = result["rss_kib"]
    assert isinstance(rss, dict)
    lines = [
        f"soak: {result['clients']} clients, {result['elapsed_s']} s, "
        f"{result['requests']} requests ({result['requests_per_s']}/s) {result['by_op']}",
        f"latency: {result['latency']}",
        f"certificates received {result['certificates_received']}, in ledger "
        f"{result['ledger_certificates']}, missing {result['missing_from_ledger']}, unclaimed "
        f"{result['unclaimed_in_ledger']} (in-flight failures {result['in_flight_failures']})",
        f"ledger verify: {result['ledger_verify']}",
        f"RSS KiB idle {rss['idle']} peak {rss['peak']} after {rss['after']} "
        f"(growth {(rss['after'] - rss['idle']) / 1024:.1f} MiB); threads {result['threads']}; "
        f"fds {result['fds']} (settled in {result['settle_s']} s)",
        f"unexpected errors: {result['unexpected_errors']} {result['error_samples']}; "
        f"connections evicted by the server: {result['evictions']}",
    ]
    checks = result["checks"]
    assert isinstance(checks, dict)
    lines += [f"  [{'ok' if ok else 'FAIL'}] {name}" for name, ok in checks.items()]
    lines.append("PASSED" if result["passed"] else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--max-requests", type=int, default=1_000_000)
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (state, log)")
    parser.add_argument(
        "--config",
        default="",
        metavar="INI",
        help='extra configuration, e.g. "[tls]\nsession_cache_size = 100"',
    )
    args = parser.parse_args(argv)
    extra = args.config.replace("\\n", "\n")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        result = soak(args.clients, args.seconds, args.max_requests, args.keep, extra)
    else:
        with tempfile.TemporaryDirectory(prefix="est-soak-") as folder:
            result = soak(args.clients, args.seconds, args.max_requests, Path(folder), extra)
    print(report(result), flush=True)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
