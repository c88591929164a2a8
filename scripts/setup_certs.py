#!/usr/bin/env python3
"""(Re)create the CA and TLS server certificate; kept for users of the older python-est.

    scripts/setup_certs.py [-c CONFIG] [--ca-key-type rsa-3072] [--server-key-type rsa-2048]
                           [--server-name est.example.net ...] [--issuing-ca] [--force]

Writes where the config says: when `[ca]` or `[tls]` `cert_file`/`key_file` name files that do
not exist yet, it creates them there (as the older script filled `certs/`); then it runs
`python-est init` for everything under `state_dir`. It refuses, naming the key, when a pair is
half there or a server certificate has no configured CA. Without --force it refuses to replace
an existing CA or server certificate; --force never replaces files the config names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.cli import main as cli_main
from python_est.config import default_config, load_config
from python_est.errors import ConfigError
from python_est.state.configured import write_configured_credentials


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
    try:
        config = load_config(Path(args.config)) if args.config else default_config(Path.cwd())
        for item in write_configured_credentials(config):
            print(f"setup_certs.py: created {item}")
    except ConfigError as exc:
        print(f"setup_certs.py: {exc}", file=sys.stderr)
        return 2
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
