"""Slowloris: 200 connections that trickle bytes must not delay a legitimate enrollment beyond
the configured deadlines (scripts/slowloris.py against a server subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slowloris.py"


def _run(tmp_path: Path, *args: str) -> dict[str, object]:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out), *args],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert out.exists(), done.stdout + done.stderr
    result: dict[str, object] = json.loads(out.read_text())
    print(json.dumps(result))  # the figures, for `pytest -s` and docs/reliability.md
    assert done.returncode == 0, result
    return result


def test_one_address_trickling_200_connections_cannot_hold_the_server(tmp_path: Path) -> None:
    # Default [server] max_connections_per_address: the tricklers get a few workers at most,
    # and their other connections are closed at once instead of queueing ahead of others.
    result = _run(tmp_path, "--connections", "200", "--samples", "3", "--warmup", "1")
    enroll = result["enroll_s"]
    assert isinstance(enroll, list) and len(enroll) == 3
    assert max(enroll) < 2.0  # well inside one deadline (2 s): nobody waited for a trickler
    assert result["statuses"] == [200, 200, 200]


def test_without_the_cap_the_deadlines_still_bound_the_wait(tmp_path: Path) -> None:
    # No per-address cap (as with tricklers on many addresses): 200 tricklers fill the 64
    # workers and the listen queue; each is dropped at its deadline, so a legitimate client
    # waits at most about one deadline per round (1 s + 1 s here), never for the tricklers.
    result = _run(
        tmp_path,
        "--per-address",
        "0",
        "--connections",
        "200",
        "--handshake-timeout",
        "1",
        "--request-timeout",
        "1",
        "--samples",
        "3",
        "--warmup",
        "1.5",
        "--slack",
        "3",
    )
    enroll = result["enroll_s"]
    assert isinstance(enroll, list) and max(enroll) < 1 + 1 + 3
    threads = result["server_threads_under_attack"]
    assert isinstance(threads, int) and threads <= 64 + 4  # the pool is bounded
