"""Command line: `python-est [-c CONFIG] [-d] [COMMAND ...]`; without a command it serves.

`main(argv)` returns the exit status: 0 success, 1 a failed operation, 2 a configuration or usage
problem. It is the only code that sets up logging, installs signal handlers or exits.

Split in two: `commands/` holds one module per command, named after it (`python-est user ...`
is `commands/user.py`), each registering itself with `add_command(sub)`; `supervisor/` is the
serving process (`serve`: start-up, `daemon`: reload and stop, `workers`: pre-fork, `signals`,
`sdnotify`). `logs` (logging set-up) and `csrview` (CSR display) serve both; `clientargs` reads
the arguments of the `client` commands.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from python_est import __version__
from python_est.cli.commands import ca as ca_command
from python_est.cli.commands import (
    certs,
    client,
    db,
    devices,
    init,
    kek,
    ledger,
    lockouts,
    requests,
    serve,
    user,
)
from python_est.cli.logs import setup_logging
from python_est.config import Config, default_config, load_config
from python_est.errors import ConfigError, UserStoreError

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
    # One line at debug level on every command, so that -d (or [DEFAULT] debug = True of the
    # older python-est) visibly takes effect and shows which configuration is in use.
    log.debug(
        "python-est %s: config %s, state in %s, log level %s",
        __version__,
        config.source,
        config.server.state_dir,
        "debug (-d)" if args.debug else config.logging.level,
    )
    command: Command = getattr(args, "func", serve.run)
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

    # Registration order is the order `--help` lists the commands in.
    for command in (
        serve,
        init,
        user,
        certs,
        requests,
        db,
        ledger,
        client,
        lockouts,
        devices,
        kek,
        ca_command,
    ):
        command.add_command(sub)
    return parser
