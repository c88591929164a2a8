"""`python-est lockouts list` and `lockouts clear [USER|ADDRESS]`: see and lift login lockouts.

The counters live where every server process and this command share them (the state
directory's lockouts file, or the [ledger] url database), so what is listed is what the servers
enforce, and a lock lifted here is lifted for all of them at once.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from python_est.app.access import failure_limiter
from python_est.audit import audit
from python_est.config import Config
from python_est.ratelimit import LoginLimiter
from python_est.state import open_state


def add_command(sub: Any) -> None:
    """Register `lockouts` on the top-level subparsers `sub`."""
    lockouts = sub.add_parser("lockouts", help="list and lift failed-login lockouts ([auth])")
    actions = lockouts.add_subparsers(title="lockouts commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every lockout in force and how long it lasts")
    listing.set_defaults(func=_list)
    clear = actions.add_parser(
        "clear", help="lift the lockouts of a user name or an address (all without an argument)"
    )
    clear.add_argument("target", nargs="?", metavar="USER|ADDRESS")
    clear.set_defaults(func=_clear)


@contextlib.contextmanager
def _limiter(config: Config) -> Iterator[LoginLimiter]:
    with open_state(config, create=False) as state:
        limiter = failure_limiter(config, state)
        try:
            yield limiter
        finally:
            limiter.close()


def _list(args: argparse.Namespace, config: Config) -> int:
    with _limiter(config) as limiter:
        found = limiter.lockouts()
    if not found:
        print("python-est: no lockouts")
        return 0
    for item in found:
        print(item.describe())
    return 0


def _clear(args: argparse.Namespace, config: Config) -> int:
    target: str | None = args.target
    with _limiter(config) as limiter:
        cleared = limiter.clear(target)
    what = "any user or address" if target is None else repr(target)
    if not cleared:
        print(f"python-est: no lockouts for {what}; nothing cleared")
        return 0
    for item in cleared:
        print(f"python-est: cleared the lockout of {item.who}")
        audit(
            "lockout-clear",
            "cleared",
            "by the operator: %s",
            item.who,
            kind=item.kind,
            user=item.user,
            address=item.address,
        )
    return 0
