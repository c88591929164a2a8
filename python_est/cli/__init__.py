"""Command line: `python-est [-c CONFIG] [-d] [COMMAND ...]`; without a command it serves.

`main(argv)` returns the exit status: 0 success, 1 a failed operation, 2 a configuration or usage
problem. It is the only code that sets up logging, installs signal handlers or exits.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from python_est import __version__
from python_est.cli.admin import add_admin_commands
from python_est.cli.client_cmd import add_client_commands
from python_est.cli.lockouts import add_lockout_commands
from python_est.cli.logs import setup_logging
from python_est.cli.serve import serve
from python_est.config import Config, default_config, load_config
from python_est.errors import ConfigError, UserStoreError
from python_est.keys import KeyType
from python_est.state import (
    create_ca,
    create_server_credentials,
    has_ca_or_server_certificate,
    open_state,
)

log = logging.getLogger("python_est")

Command = Callable[[argparse.Namespace, Config], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with `argv` (default: `sys.argv[1:]`) and return the exit status."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(Path(args.config)) if args.config else default_config(Path.cwd())
    except ConfigError as exc:
        print(f"python-est: {exc}", file=sys.stderr)
        return 2
    setup_logging("debug" if args.debug else config.logging.level, config.logging.format)
    for warning in config.warnings:
        log.warning("%s", warning)
    command: Command = getattr(args, "func", _serve)
    try:
        return command(args, config)
    except ConfigError as exc:
        print(f"python-est: {exc}", file=sys.stderr)
        return 2
    except UserStoreError as exc:
        print(f"python-est: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python-est", description="EST (RFC 7030) server with an embedded CA."
    )
    parser.add_argument("-c", "--config", help="INI file (default: embedded defaults)")
    parser.add_argument("-d", "--debug", action="store_true", help="log at debug level")
    parser.add_argument("--version", action="version", version=f"python-est {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server (the default)")
    serve.set_defaults(func=_serve)

    init = sub.add_parser("init", help="create the CA, server certificate, ledger and user store")
    init.add_argument("--force", action="store_true", help="replace an existing CA and server cert")
    init.add_argument(
        "--refuse-existing",
        action="store_true",
        help="fail instead of keeping an existing CA (without --force)",
    )
    init.add_argument("--ca-key-type", type=KeyType, choices=list(KeyType), metavar="TYPE")
    init.add_argument("--ca-common-name")
    init.add_argument("--issuing-ca", action="store_true", help="add an issuing CA below the root")
    init.add_argument("--server-key-type", type=KeyType, choices=list(KeyType), metavar="TYPE")
    init.add_argument(
        "--server-name", action="append", default=[], help="extra DNS name or IP (repeatable)"
    )
    init.set_defaults(func=_init)

    add_admin_commands(sub)
    add_client_commands(sub)
    add_lockout_commands(sub)
    return parser


def _serve(args: argparse.Namespace, config: Config) -> int:
    return serve(config, config_path=Path(args.config) if args.config else None, debug=args.debug)


def _init(args: argparse.Namespace, config: Config) -> int:
    config = _with_init_overrides(args, config)
    state_dir = config.server.state_dir
    if has_ca_or_server_certificate(config) and args.refuse_existing and not args.force:
        print(
            f"python-est: a CA or server certificate already exists under {state_dir}; "
            "use --force to replace it",
            file=sys.stderr,
        )
        return 1
    if args.force:
        ca = create_ca(config)
        create_server_credentials(config, ca)
        print(f"python-est: new CA and server certificate written under {state_dir}")
    state = open_state(config, create=True)
    for item in state.created:
        print(f"python-est: created {item}")
    if not state.created and not args.force:
        print(f"python-est: state in {state_dir} is complete; nothing to do (--force replaces it)")
    return 0


def _with_init_overrides(args: argparse.Namespace, config: Config) -> Config:
    ca = config.ca
    if args.ca_key_type is not None:
        ca = replace(ca, key_type=args.ca_key_type)
    if args.ca_common_name:
        ca = replace(ca, common_name=args.ca_common_name)
    if args.issuing_ca:
        ca = replace(ca, issuing_ca=True)
    tls = config.tls
    if args.server_key_type is not None:
        tls = replace(tls, server_key_type=args.server_key_type)
    server = config.server
    if args.server_name:
        server = replace(server, server_names=(*server.server_names, *args.server_name))
    return replace(config, ca=ca, tls=tls, server=server)
