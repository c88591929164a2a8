"""`python-est certs crl`, and the CRL update that follows `python-est certs revoke`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from python_est.app import build_crl_publisher
from python_est.ca import crl_number
from python_est.config import Config
from python_est.state import State, open_state


def add_crl_command(cert_cmds: Any) -> None:
    """Register `crl` on the `certs` subparsers."""
    crl = cert_cmds.add_parser(
        "crl", help="regenerate the CRL now and write it (for a timer on an idle server)"
    )
    crl.set_defaults(func=_certs_crl)


def publish_crl(config: Config, state: State) -> int:
    """Regenerate the CRL and write it to `[crl] file`; returns the exit status.

    A running server serves the new file from its next CRL request on. Without `[crl]`
    enabled, nothing is done.

    Raises:
        ConfigError: the CA cannot sign CRLs.
    """
    publisher = build_crl_publisher(config, state)
    if publisher is None:
        return 0
    try:
        crl = publisher.publish()
    except OSError as exc:
        print(
            f"python-est: the CRL could not be written to {publisher.path}: "
            f"{exc.strerror or exc}; fix that and run `python-est certs crl`",
            file=sys.stderr,
        )
        return 1
    number = crl_number(crl)
    next_update = crl.next_update_utc
    print(
        f"python-est: CRL {number} with {len(crl)} revoked certificate(s) written to "
        f"{publisher.path}"
        + (f" (next update {next_update:%Y-%m-%d %H:%M}Z)" if next_update else "")
    )
    return 0


def _certs_crl(args: argparse.Namespace, config: Config) -> int:
    if not config.crl.enabled:
        print("python-est: CRLs are disabled ([crl] enabled = no)", file=sys.stderr)
        return 1
    return publish_crl(config, open_state(config, create=True))
