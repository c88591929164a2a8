#!/usr/bin/env python3
"""Where the server's CPU goes: summarise py-spy profiles taken by `bench.py --py-spy DIR`.

py-spy samples the server with `--gil` (only the thread holding the GIL, i.e. running Python),
so each sample is CPU spent in Python code or in C it called without releasing the GIL (all of
tlslite, the ciphers in `cryptography`). The leaf frame of each sample is put in a bucket:

    python scripts/bench_profile.py DIR/handshake-full-w1.txt [--top 15]

prints the share of each bucket and the hottest functions.

`--waits` reads a profile taken with `py-spy record --idle` instead (`bench.py --py-spy DIR
--py-spy-idle`): every thread, waiting or not, so the samples of the threads serving
connections show where a connection's wall time goes: waiting for the client, for the ledger's
commit, for a lock, or running (py-spy cannot tell a thread waiting for the GIL from one running).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

# (bucket, substrings of "function (file:line)"), first match wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("OpenSSL via cryptography (fast path)", ("python_est/tls/fast", "cryptography/")),
    ("X25519 in Python (tlslite)", ("tlslite/utils/x25519.py",)),
    ("NIST-curve ECDH/ECDSA in Python (python-ecdsa)", ("ecdsa/",)),
    ("big-number maths: RSA, SRP, DHE (tlslite, gmpy2)", ("rsakey.py", "powMod (", "invMod (")),
    (
        "record ciphers in Python (tlslite)",
        ("rijndael.py", "aesgcm.py", "python_aes", "chacha", "poly1305", "aesccm.py"),
    ),
    ("tlslite protocol code (messages, records, state)", ("tlslite/",)),
    ("python_est.tls (routing, identity, deadlines)", ("python_est/tls/",)),
    ("SQLite ledger", ("sqlite", "python_est/ledger/")),
    ("logging", ("logging/", "python_est/cli/logs.py", "python_est/server/outcome.py")),
    ("EST service, CA, HTTP, server loop", ("python_est/",)),
]


def bucket(frame: str) -> str:
    for name, needles in BUCKETS:
        if any(needle in frame for needle in needles):
            return name
    return "other (stdlib: threads, sockets, selectors)"


def summarise(path: Path, top: int) -> str:
    leaves: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        leaves[frames[-1]] += int(count)
        total += int(count)
    if not total:
        return f"{path.name}: no samples"
    buckets: Counter[str] = Counter()
    for frame, count in leaves.items():
        buckets[bucket(frame)] += count
    lines = [f"{path.name}: {total} samples holding the GIL"]
    lines += [f"  {count / total * 100:5.1f}%  {name}" for name, count in buckets.most_common()]
    lines.append("  hottest functions (self):")
    lines += [f"  {count / total * 100:5.1f}%  {frame}" for frame, count in leaves.most_common(top)]
    return "\n".join(lines)


# (what a connection's thread is doing, substrings of its leaf frame), first match wins.
WAITS: list[tuple[str, tuple[str, ...]]] = [
    ("waiting for the client: recv", ("DeadlineSocket.recv", "peek_first_record", "hello.py")),
    ("sending (send, sendall)", ("DeadlineSocket.send",)),
    ("closing: FIN, then drain until the client's", ("DeadlineSocket.close",)),
    ("ledger: commit (fsync) or waiting for the group's", ("python_est/ledger/",)),
    ("lockout counters (SQLite)", ("python_est/ratelimit/",)),
    ("logging", ("logging/",)),
    ("other locks and conditions", ("Condition.wait", "Lock.acquire", "Event.wait")),
]


def waits(path: Path) -> str:
    """Where the connection threads' wall time goes, from a `py-spy --idle` profile."""
    kinds: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "EstServer._serve (" not in stack or not count.isdigit():
            continue  # idle workers, the watcher, other threads
        frames = stack.split(";")
        # A wait in the standard library (a Condition, a Lock) counts for our caller.
        ours = next((f for f in reversed(frames) if "python_est/" in f), frames[-1])
        kind = next(
            (name for name, needles in WAITS if any(n in frames[-1] or n in ours for n in needles)),
            "running, or waiting for the GIL",
        )
        kinds[kind] += int(count)
        total += int(count)
    if not total:
        return f"{path.name}: no samples of connection threads (taken with --idle?)"
    lines = [f"{path.name}: {total} samples of threads serving a connection"]
    lines += [f"  {count / total * 100:5.1f}%  {name}" for name, count in kinds.most_common()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="+", type=Path, help="py-spy --format raw files")
    parser.add_argument("--top", type=int, default=12, help="functions to list")
    parser.add_argument("--waits", action="store_true", help="a --idle profile: wall time")
    args = parser.parse_args()
    for path in args.profiles:
        print(waits(path) if args.waits else summarise(path, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
