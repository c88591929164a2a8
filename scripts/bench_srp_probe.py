#!/usr/bin/env python3
"""Time the server's SRP first flight for known and fresh unknown user names (issue 13 item 5).

A prober that sends a ClientHello with an SRP user name and times the answer up to
ServerHelloDone learns whether the name exists if the two cost different amounts of work. This
script starts a python-est server on 127.0.0.1 with a few real users, probes real names and never
seen names in alternation (the prober never completes a handshake: no password is needed), and
prints the median and spread of each kind. It prints figures; it never asserts a time. Names of
one-time device codes (issue 18 item 2) are probed too: usable ones, and used ones, which must
look like unknown names.

    .venv/bin/python scripts/bench_srp_probe.py [--rounds 200]

`first_flight_seconds` is also what the integration test uses.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from tlslite.constants import CipherSuite, HandshakeType
from tlslite.messages import ClientHello

from est_harness import RunningServer, running_server
from python_est.app.access import device_registry
from python_est.devices import Registration, generate_code
from python_est.users.srp import compute_verifier, new_salt

# Pure SRP suites (RFC 5054 §2.7), as curl and libest offer them.
_SUITES = [
    CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA,
    CipherSuite.TLS_SRP_SHA_WITH_AES_128_CBC_SHA,
]


def client_hello(user: str) -> bytes:
    """One TLS record holding a TLS 1.2 ClientHello that offers SRP for `user`."""
    hello = ClientHello().create(
        (3, 3),
        bytearray(os.urandom(32)),
        bytearray(0),
        _SUITES,
        srpUsername=bytearray(user.encode()),
    )
    body = bytes(hello.write())
    return b"\x16\x03\x01" + struct.pack("!H", len(body)) + body


def first_flight_seconds(port: int, user: str, *, timeout: float = 10.0) -> float:
    """Seconds from sending an SRP ClientHello for `user` to receiving ServerHelloDone.

    The connection is then dropped: a half-open handshake, as a name prober leaves it.

    Raises:
        ConnectionError: the server answered with anything but ServerHello..ServerHelloDone.
    """
    record = client_hello(user)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.perf_counter()
        sock.sendall(record)
        _read_until_hello_done(sock)
        return time.perf_counter() - started


def _read_until_hello_done(sock: socket.socket) -> None:
    stream = b""
    while True:
        header = _read_exactly(sock, 5)
        if header[0] != 22:
            raise ConnectionError(f"server sent record type {header[0]} (alert or not TLS)")
        stream += _read_exactly(sock, struct.unpack("!H", header[3:5])[0])
        while len(stream) >= 4:
            size = int.from_bytes(stream[1:4], "big")
            if len(stream) < 4 + size:
                break
            if stream[0] == HandshakeType.server_hello_done:
                return
            stream = stream[4 + size :]


def _read_exactly(sock: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def summary(samples: list[float]) -> str:
    """Median and spread (interquartile range, min, max) in milliseconds."""
    ms = sorted(1000 * s for s in samples)
    q1, _, q3 = statistics.quantiles(ms, n=4)
    return (
        f"median {statistics.median(ms):6.2f} ms  IQR {q1:6.2f}-{q3:6.2f}"
        f"  min {ms[0]:6.2f}  max {ms[-1]:6.2f}  (n={len(ms)})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="probes of each kind")
    parser.add_argument("--group-bits", type=int, default=2048, choices=[2048, 3072, 4096])
    args = parser.parse_args(argv)
    # Counters high enough that the probes themselves are never refused.
    cfg = "[auth]\nmax_failures = 100000\naccount_max_failures = 100000\n"
    cfg += "address_max_failures = 100000\n"
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), cfg) as server:
        users = server.state.users
        assert users is not None
        known = [f"device{i}" for i in range(5)]
        for name in known:
            users.add(name, "password of " + name, group_bits=args.group_bits)
        devices, used = _register_devices(server, args.group_bits)
        for name in known + devices + used:  # warm-up: first connections pay for imports
            first_flight_seconds(server.port, name)
        timings: dict[str, list[float]] = {
            "known": [],
            "fresh unknown": [],
            "device code": [],
            "used code": [],
        }
        for i in range(args.rounds):
            timings["known"].append(first_flight_seconds(server.port, known[i % len(known)]))
            fresh = f"nobody-{os.getpid()}-{i}"
            timings["fresh unknown"].append(first_flight_seconds(server.port, fresh))
            device, spent = devices[i % len(devices)], used[i % len(used)]
            timings["device code"].append(first_flight_seconds(server.port, device))
            timings["used code"].append(first_flight_seconds(server.port, spent))
        for kind, samples in timings.items():
            print(f"{kind:>14}: {summary(samples)}")
    return 0


def _register_devices(server: RunningServer, group_bits: int) -> tuple[list[str], list[str]]:
    """Five devices with usable SRP codes and five whose codes were used."""
    registry = device_registry(server.config)
    now = datetime.now(timezone.utc)
    usable, used = [f"code{i}" for i in range(5)], [f"spent{i}" for i in range(5)]
    for name in usable + used:
        code = generate_code()
        salt = new_salt()
        verifier = compute_verifier(group_bits, salt, name.encode(), code.encode())
        registration = Registration("", name, f"CN={name}", (), now)
        registry.add(registration, code, srp=(group_bits, salt, verifier))
    for name in used:
        assert registry.claim("", name, "bench", now)
        registry.mark_used("", name, "bench", "01", now)
    return usable, used


if __name__ == "__main__":
    sys.exit(main())
