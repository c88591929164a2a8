"""The 10-second soak: scripts/soak.py with 100 clients against a server subprocess.

100 clients for the default 64 workers: the pool stays full and connections queue, so the
server's eviction check runs all along, and a healthy client it cuts is an unexpected error
(evicting by connection age cut TLS-SRP clients here, after issuing their certificates).

The script checks the rest (no unexpected errors, ledger reconciliation, unique serials,
`ledger verify`, fds and threads back to idle); here its result is also bounded loosely, so a
slow CI machine passes and a leak does not.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def test_ten_second_soak(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--clients", "100", "--seconds", "10", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    print(done.stdout)  # the figures, for `pytest -s` and docs/reliability.md
    failed = [name for name, ok in result["checks"].items() if not ok]
    assert done.returncode == 0 and not failed, (failed, done.stdout)
    assert result["unexpected_errors"] == 0 and result["evictions"] == 0
    assert result["requests"] >= 100  # it did run: even a slow machine manages 10/s
    assert set(result["by_op"]) == {"enroll", "reenroll", "cacerts", "srp"}
    assert result["missing_from_ledger"] == 0
    assert result["certificates_received"] == result["ledger_certificates"]
    rss = result["rss_kib"]
    # The session caches grow with handshakes (bounded by [tls] session_cache_size); anything
    # near this bound in 10 s is a leak.
    assert rss["after"] - rss["idle"] < 150 * 1024
    assert result["fds"]["after"] <= result["fds"]["idle"]
