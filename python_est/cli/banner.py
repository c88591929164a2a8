"""The start-up banner: where the server listens and what to hand out (issue 15 item 6).

The operator reads it once, at the first start, and hands out three things: the EST base URL
(and the bootstrap page), the CA's SHA-256 fingerprint (a device without the CA checks the root
it fetched against it, RFC 7030 §4.1.1), and a command that adds a user, spelled the way this
program was started, so that it runs when pasted even where `python-est` is not on PATH.
"""

from __future__ import annotations

import platform
import shlex
import shutil
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from python_est.config import Config
from python_est.messages import WELL_KNOWN

_WILDCARDS = {"0.0.0.0", "::", ""}


def program_command(argv0: str, executable: str) -> str:
    """The shell words that start this program again, from `sys.argv[0]` and `sys.executable`.

    `python main.py` and `python -m python_est` give a Python script (re-run with this Python,
    by absolute path); an entry point found on PATH stays its bare name; any other path is made
    absolute, so the command works from any folder.
    """
    program = Path(argv0)
    if program.name == "__main__.py":
        return f"{shlex.quote(executable)} -m python_est"
    if program.suffix == ".py":
        return f"{shlex.quote(executable)} {shlex.quote(str(program.resolve()))}"
    if "/" not in argv0 and shutil.which(argv0):
        return shlex.quote(argv0)
    return shlex.quote(str(program.resolve()))


def base_url(config: Config, address: tuple[str, int]) -> str:
    """The public URL of this server: `[crl] base_url` when set, else built from the address
    (a wildcard address is named by the first `server_names` entry or this host's name)."""
    if config.crl.base_url:
        return config.crl.base_url.rstrip("/")
    host, port = address
    if host in _WILDCARDS:
        names = config.server.server_names
        host = names[0] if names else platform.node() or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"https://{host}:{port}"


def banner_lines(
    config: Config,
    config_path: Path | None,
    address: tuple[str, int],
    root: x509.Certificate,
    program: str,
) -> list[str]:
    """The lines after "listening on ...": URLs, CA fingerprint, the add-user command."""
    url = base_url(config, address)
    lines = [f"EST base URL: {url}{WELL_KNOWN}"]
    if config.bootstrap.enabled:
        lines.append(f"bootstrap page: {url}{config.bootstrap.path} (browsers must trust the CA)")
    digest = root.fingerprint(hashes.SHA256()).hex(":").upper()
    lines.append(f"CA SHA-256 fingerprint: {digest}")
    token = config.ca.pkcs11
    if token is not None:
        lines.append(f"CA key: {token.key_label!r} on PKCS#11 token {token.token!r}")
    config_arg = f" -c {shlex.quote(str(config_path.resolve()))}" if config_path else ""
    lines.append(f"add a user: {program}{config_arg} user add NAME")
    return lines
