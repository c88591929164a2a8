"""Config files for a server under test: a base, merged with each caller's sections and keys."""

from __future__ import annotations

import configparser
import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "main.py"

# What an operator's first config looks like: defaults everywhere else. The scripts measure
# this one (soak, fuzz, slowloris).
BASE_CFG = """\
[server]
address = 127.0.0.1
port = 0
state_dir = state
[ca]
key_type = ec-p256
"""

# Whole-server tests: short deadlines, so a test that goes wrong fails in seconds.
TEST_CFG = """\
[server]
address = 127.0.0.1
port = 0
state_dir = state
handshake_timeout = 5
request_timeout = 5
[ca]
key_type = ec-p256
[tls]
server_key_type = rsa-2048
"""


def merge_config(base: str, *extras: str) -> str:
    """`base` with the sections and keys of each of `extras` added or overriding, in order."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\x00defaults")
    for text in (base, *extras):
        parser.read_string(text)  # later keys win; a repeated section header is fine across reads
    out = io.StringIO()
    parser.write(out)
    return out.getvalue()


def write_config(root: Path, *extras: str, base: str = BASE_CFG) -> Path:
    """Write `root/est.cfg`: `base` merged with `extras` (see `merge_config`)."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "est.cfg"
    path.write_text(merge_config(base, *extras))
    return path
