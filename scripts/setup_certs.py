#!/usr/bin/env python3
"""(Re)create the CA and TLS server certificate; kept for users of the older python-est.

A thin wrapper over `python-est init`:

    scripts/setup_certs.py [-c CONFIG] [--ca-key-type rsa-3072] [--server-key-type rsa-2048]
                           [--server-name est.example.net ...] [--issuing-ca] [--force]

Without --force it refuses to replace an existing CA or server certificate.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config")
    parser.add_argument("--ca-key-type")
    parser.add_argument("--ca-common-name")
    parser.add_argument("--server-key-type")
    parser.add_argument("--server-name", action="append", default=[])
    parser.add_argument("--issuing-ca", action="store_true")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    forwarded = ["-c", args.config] if args.config else []
    forwarded += ["init", "--refuse-existing"]
    for option in ("ca_key_type", "ca_common_name", "server_key_type"):
        value = getattr(args, option)
        if value:
            forwarded += [f"--{option.replace('_', '-')}", value]
    for name in args.server_name:
        forwarded += ["--server-name", name]
    if args.issuing_ca:
        forwarded.append("--issuing-ca")
    if args.force:
        forwarded.append("--force")
    return cli_main(forwarded)


if __name__ == "__main__":
    sys.exit(main())
