"""`python-est serve` (the default): run the server; the serving process is `cli.supervisor`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from python_est.cli.supervisor.serve import serve
from python_est.config import Config


def add_command(sub: Any) -> None:
    """Register `serve` on the top-level subparsers `sub`."""
    command = sub.add_parser("serve", help="run the server (the default)")
    command.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Serve until stopped (also what `python-est` without a command does)."""
    return serve(config, config_path=Path(args.config) if args.config else None, debug=args.debug)
