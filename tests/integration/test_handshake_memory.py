"""Memory per connection is bounded before authentication (issue 13 item 9).

A handshake message's 24-bit length header may claim 16 MiB; tlslite gathers the whole message
before it parses anything, so each such ClientHello cost a server about 30 MB of peak memory.
Here several clients send such hellos at once to a server process, and the server's peak RSS
(VmHWM) must stay bounded: the hello is refused at its length header.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from est_harness import build_request, daemon, https

pytestmark = pytest.mark.integration

CLIENTS = 8
CLAIMED = 0xFFFFFF  # the largest length a handshake header can hold: 16 MiB
RECORD = 16384  # the largest plaintext record (RFC 5246 §6.2.1)
# Without the bound the server peaked at about 30 MB per hello (240 MB for these 8); with it
# each connection holds a record or two. Generous, and far below what the attack costs.
PEAK_GROWTH_LIMIT = 48 * 1024 * 1024


def peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM, Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def hostile_hello(port: int, deadline: float) -> None:
    """Send a ClientHello that claims 16 MiB, record by record, until the server hangs up.

    After refusing, the server still drains input for a moment before closing (so that its
    alert is not lost to a reset), so the whole message may well go out: memory tells.
    """
    body = bytes([1]) + CLAIMED.to_bytes(3, "big") + bytes([3, 3]) + os.urandom(32)
    sent = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            while sent < CLAIMED + 4 and time.monotonic() < deadline:
                chunk = body[:RECORD] if sent == 0 else bytes(RECORD)
                sock.sendall(bytes([22, 3, 1]) + len(chunk).to_bytes(2, "big") + chunk)
                sent += len(chunk)
    except OSError:
        pass  # reset or broken pipe: the server closed on us


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_oversized_hellos_are_refused_at_their_length_header(tmp_path: Path) -> None:
    # No per-address cap here: all the hellos must reach the TLS layer at once.
    extra = "[server]\nmax_connections_per_address = 0\nhandshake_timeout = 30\n"
    with daemon(tmp_path, extra) as server:
        cafile = tmp_path / "state" / "ca" / "ca.pem"
        request = build_request("GET", "/.well-known/est/cacerts", port=server.port)
        assert https(server.port, request, cafile=cafile).status == 200  # warmed up
        before = peak_rss(server.proc.pid)
        deadline = time.monotonic() + 60
        threads = [
            threading.Thread(target=hostile_hello, args=(server.port, deadline))
            for _ in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=90)
        server.wait_for(r"handshake message over 65536 bytes", count=CLIENTS)
        growth = peak_rss(server.proc.pid) - before
        assert https(server.port, request, cafile=cafile).status == 200  # still serving
    assert growth < PEAK_GROWTH_LIMIT, f"peak RSS grew by {growth / 2**20:.0f} MiB"
