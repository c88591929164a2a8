"""The one harness that drives a python-est server, shared by the tests and the scripts (soak,
fuzz, slowloris, benchmarks): config files (`config`), EST clients that speak the wire the way
devices do (`client`), the server as a subprocess (`process`) or in a thread (`inproc`).

It lives under `scripts/` because scripts must not import `tests` (conftest, pytest fixtures)
while tests may import from scripts: a script run as `python scripts/NAME.py` finds it next to
itself, and pytest's `pythonpath` (pyproject.toml) puts `scripts` on the path for the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

# A script run from a checkout without `pip install -e .` still imports python_est.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from est_harness.client import (  # noqa: E402
    EST,
    Reply,
    basic,
    basic_enroll,
    build_request,
    client_context,
    csr_body,
    enroll_request,
    https,
    make_csr,
    make_key,
    parse_reply,
    read_all,
    srp,
    srp_alert,
    write_credentials,
)
from est_harness.config import BASE_CFG, MAIN, ROOT, TEST_CFG, merge_config, write_config  # noqa: E402
from est_harness.inproc import RunningServer, running_server  # noqa: E402
from est_harness.process import (  # noqa: E402
    Daemon,
    NotifySocket,
    daemon,
    init_state,
    ledger_serials,
    poll,
    prepare_state,
    run_cli,
)

__all__ = [
    "BASE_CFG",
    "EST",
    "MAIN",
    "ROOT",
    "TEST_CFG",
    "Daemon",
    "NotifySocket",
    "Reply",
    "RunningServer",
    "basic",
    "basic_enroll",
    "build_request",
    "client_context",
    "csr_body",
    "daemon",
    "enroll_request",
    "https",
    "init_state",
    "ledger_serials",
    "make_csr",
    "make_key",
    "merge_config",
    "parse_reply",
    "poll",
    "prepare_state",
    "read_all",
    "run_cli",
    "running_server",
    "srp",
    "srp_alert",
    "write_config",
    "write_credentials",
]
