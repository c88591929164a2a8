"""A SoftHSM2 token for the tests that keep the CA key on PKCS#11.

SoftHSM2 reads `SOFTHSM2_CONF` once, when a process first initialises it, and python-est keeps
that initialisation for the life of the process: so every test in a run shares one token
directory (made once, removed at exit) and one token, and tests tell their keys apart by label.
Subprocesses inherit `SOFTHSM2_CONF` and see the same token.
"""

from __future__ import annotations

import atexit
import functools
import os
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_tool

MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)
TOKEN_LABEL = "python-est-test"
PIN = "4711-test-pin"


@dataclass(frozen=True)
class SoftToken:
    """The token's module, label and user PIN (the PIN also in `pin_file`, for config)."""

    module: Path
    label: str
    pin: str
    pin_file: Path

    def config(self, key_label: str, *, pin: str = "") -> str:
        """`[ca]` keys naming `key_label` on this token (with `pin` as a file: source)."""
        return (
            "[ca]\n"
            f"pkcs11_module = {self.module}\n"
            f"pkcs11_token = {self.label}\n"
            f"pkcs11_key_label = {key_label}\n"
            f"pkcs11_pin = {pin or f'file:{self.pin_file}'}\n"
        )


def new_label(prefix: str) -> str:
    """A key label no other test uses."""
    return f"{prefix}-{secrets.token_hex(4)}"


@functools.cache
def _token() -> SoftToken:
    util = require_tool("softhsm2-util")
    module = next((path for path in MODULES if path.is_file()), None)
    if module is None:
        pytest.skip("the SoftHSM2 module is not installed (scripts/install-system-deps)")
    root = Path(tempfile.mkdtemp(prefix="python-est-softhsm-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    (root / "tokens").mkdir()
    conf = root / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {root / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    subprocess.run(
        [util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN, "--so-pin", PIN],
        check=True,
        capture_output=True,
        timeout=60,
    )
    pin_file = root / "pin"
    pin_file.write_text(PIN + "\n")
    pin_file.chmod(0o600)
    return SoftToken(module, TOKEN_LABEL, PIN, pin_file)


def soft_token() -> SoftToken:
    """The run's SoftHSM2 token (skipped without SoftHSM2 or python-pkcs11; failed under CI)."""
    pytest.importorskip("pkcs11", reason="python-pkcs11 is not installed (the test extra)")
    return _token()
