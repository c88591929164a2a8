#!/usr/bin/env python3
"""Create and fill the SRP user store, with the verbs of the older tool: create, setup, add, list.

    scripts/create_srp_users.py [-c CONFIG | --db FILE] create|setup [--demo]|add USER|list

The store is the one `-c CONFIG` names (`[srp] user_db`, by default `state_dir/users.srp`), or
`--db FILE`; without either, `state/users.srp`. The logic lives in `python_est.users`;
`python-est user ...` is the full admin CLI.
"""

from __future__ import annotations

import argparse
import getpass
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.config import default_config, load_config
from python_est.errors import ConfigError, UserStoreError
from python_est.users import UserStore

DEMO_USERS = ("python-est-demo-1", "python-est-demo-2")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_mutually_exclusive_group()
    where.add_argument("-c", "--config", type=Path, help="the server's config: its [srp] user_db")
    where.add_argument("--db", type=Path, help="store file (default: state/users.srp)")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("create", parents=[common], help="create an empty store (as setup)")
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
    """Run one verb; 0 on success, 1 on a store error, 2 on a config error (on stderr)."""
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config) if args.config else default_config(Path.cwd())
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    db = config.srp.user_db if args.config else args.db or Path("state/users.srp")
    try:
        if args.verb in ("create", "setup"):
            store = UserStore.create(db)
            print(f"created the user store {db}", file=sys.stderr)
            for user in DEMO_USERS if getattr(args, "demo", False) else ():
                password = secrets.token_urlsafe(16)
                store.add(user, password)
                print(f"{user}\t{password}")
        elif args.verb == "add":
            password = _password(args)
            minimum = config.srp.min_password_length
            if len(password) < minimum:
                raise UserStoreError(
                    f"the password has {len(password)} characters; at least {minimum} are "
                    "required ([srp] min_password_length)"
                )
            UserStore(db).add(args.user, password)
        else:
            store = UserStore(db)
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
