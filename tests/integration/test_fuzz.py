"""A short run of scripts/fuzz.py: 1,000 mutated ClientHellos and 1,000 mutated HTTP requests
against a server subprocess; it survives, answers no 500, logs no traceback, and serves a
legitimate client afterwards. The 10,000 + 10,000 run is in docs/reliability.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fuzz.py"


def test_fuzzed_hellos_and_requests(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--hellos",
            "1000",
            "--requests",
            "1000",
            "--seed",
            "2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert out.exists(), done.stdout + done.stderr
    result = json.loads(out.read_text())
    failed = [name for name, ok in result["checks"].items() if not ok]
    assert done.returncode == 0 and not failed, (failed, result)
    assert result["legitimate"] == {"cacerts": 200, "basic enroll": 200, "srp enroll": 200}
    assert sum(result["hello_results"].values()) == 1000
    assert sum(result["request_results"].values()) == 1000
    # The mutations reach the parsers: most requests get an HTTP answer, most hellos an alert.
    answered = sum(n for k, n in result["request_results"].items() if k.isdigit())
    assert answered > 500
    alerts = sum(n for k, n in result["hello_results"].items() if k.startswith("alert:"))
    assert alerts > 300
