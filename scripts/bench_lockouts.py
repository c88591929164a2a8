#!/usr/bin/env python3
"""Cost of the lockout check that runs before every password attempt, per counter store.

Fills each store with many counters and locks (as after a long spray), then times `check` for a
user with no record, `record_failure` and `record_success`. Prints microseconds per call; it
never asserts a time.

    .venv/bin/python scripts/bench_lockouts.py [--keys 20000] [--calls 2000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.ratelimit import CounterStore, Limits, LoginLimiter, MemoryCounters, SqliteCounters


def per_call_us(calls: int, action: Callable[[int], None]) -> float:
    started = time.perf_counter()
    for i in range(calls):
        action(i)
    return 1e6 * (time.perf_counter() - started) / calls


def bench(name: str, store: CounterStore, keys: int, calls: int) -> None:
    limiter = LoginLimiter(store, Limits(3, 1_000_000, 3, window=3600, lockout=3600))
    for i in range(keys):  # every pair and address locks: a full table
        limiter.record_failure(f"user{i}", f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
    check = per_call_us(calls, lambda i: limiter.check(f"new{i}", f"192.0.2.{i & 255}"))
    fail = per_call_us(calls, lambda i: limiter.record_failure(f"f{i}", f"198.51.100.{i & 255}"))
    succeed = per_call_us(calls, lambda i: limiter.record_success(f"s{i}", "203.0.113.1"))
    print(
        f"{name:>7}: check {check:7.1f} us   record_failure {fail:7.1f} us"
        f"   record_success {succeed:7.1f} us   ({keys} keys before)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    bench("memory", MemoryCounters(), args.keys, args.calls)
    with tempfile.TemporaryDirectory() as tmp:
        bench("sqlite", SqliteCounters(Path(tmp) / "lockouts.sqlite3"), args.keys, args.calls)
    return 0


if __name__ == "__main__":
    sys.exit(main())
