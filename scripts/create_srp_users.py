"""Create and fill the SRP user store, with the verbs of the older tool: setup, add, list.

Run from the repository root as `python -m scripts.create_srp_users ...` (or with the package
installed). The logic lives in `python_est.users`; `python-est user ...` is the full admin CLI.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

from python_est.errors import UserStoreError
from python_est.users import UserStore

DEMO_USERS = ("python-est-demo-1", "python-est-demo-2")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", type=Path, default=Path("state/users.srp"), help="store file")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    setup = verbs.add_parser("setup", parents=[common], help="create an empty store")
    setup.add_argument("--demo", action="store_true", help="add demo users, print passwords")
    add = verbs.add_parser("add", parents=[common], help="add a user")
    add.add_argument("user")
    add.add_argument("password", nargs="?", help="insecure: visible in history and ps")
    add.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    verbs.add_parser("list", parents=[common], help="list users")
    return parser


def _password(args: argparse.Namespace) -> str:
    if args.password is not None:
        print(
            "warning: a password on the command line leaks into shell history and the process "
            "list; prefer the prompt or --password-stdin",
            file=sys.stderr,
        )
        return str(args.password)
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass(f"Password for {args.user}: ")
    if getpass.getpass("Repeat: ") != password:
        raise UserStoreError("the passwords do not match")
    return password


def main(argv: list[str] | None = None) -> int:
    """Run one verb; 0 on success, 1 on a store error (printed to stderr)."""
    args = _parser().parse_args(argv)
    try:
        if args.verb == "setup":
            store = UserStore.create(args.db)
            for user in DEMO_USERS if args.demo else ():
                password = secrets.token_urlsafe(16)
                store.add(user, password)
                print(f"{user}\t{password}")
        elif args.verb == "add":
            UserStore(args.db).add(args.user, _password(args))
        else:
            store = UserStore(args.db)
            for user in store.list_users():
                weak = (
                    " (weak SRP group: change the password)" if user in store.weak_users() else ""
                )
                print(f"{user}\t{', '.join(store.allowed_names(user))}{weak}")
    except UserStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
