"""`python-est user ...`: the SRP user store (TLS-SRP and HTTP Basic)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from python_est.app.access import device_registry
from python_est.cli.commands.db import import_user_file
from python_est.config import Config
from python_est.errors import UserStoreError
from python_est.safetext import escape
from python_est.state import open_state, user_store_path
from python_est.statedir import StateDir
from python_est.usernames import same_account
from python_est.users import UserDirectory, UserStore
from python_est.users.imports import read_openssl_srpvfile, read_tlslite_verifierdb


def add_command(sub: Any) -> None:
    """Register `user` on the top-level subparsers `sub`."""
    user = sub.add_parser("user", help="manage the SRP user store (TLS-SRP and HTTP Basic)")
    users = user.add_subparsers(title="user commands", metavar="ACTION", required=True)
    add = users.add_parser("add", help="add a user (password prompted, or --password-stdin)")
    add.add_argument("name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    add.add_argument(
        "--allow",
        action="append",
        default=[],
        metavar="NAME",
        help="a subject CN or SAN this user may request (repeatable; default: NAME)",
    )
    add.set_defaults(func=_user_add)
    passwd = users.add_parser("passwd", help="change a user's password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(func=_user_passwd)
    remove = users.add_parser("remove", help="remove a user")
    remove.add_argument("name")
    remove.set_defaults(func=_user_remove)
    listing = users.add_parser("list", help="list users and the names they may request")
    listing.set_defaults(func=_user_list)
    allow = users.add_parser("allow", help="set the names a user may request")
    allow.add_argument("name")
    allow.add_argument("allowed", nargs="+", metavar="ALLOWED")
    allow.set_defaults(func=_user_allow)
    imp = users.add_parser(
        "import",
        help="import an `openssl srp` file or a tlslite VerifierDB; `file`: move the users of "
        "a python-est verifier file into the [ledger] url database",
    )
    imp.add_argument("format", choices=["openssl", "tlslite", "file"])
    imp.add_argument("path")
    imp.add_argument("--overwrite", action="store_true", help="replace users that exist")
    imp.set_defaults(func=_user_import)


def _store(config: Config) -> UserDirectory:
    if not config.srp.enabled:
        raise UserStoreError("the user store is disabled ([srp] enabled = no)")
    store = open_state(config, create=False).users
    assert store is not None  # enabled above
    return store


def _user_add(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    _refuse_device_names(config, [args.name])
    password = read_new_password(args, config.srp.min_password_length)
    store.add(
        args.name,
        password,
        group_bits=config.srp.group_bits,
        allowed_names=tuple(args.allow) or None,
    )
    print(f"python-est: added user {args.name!r}")
    return 0


def _refuse_device_names(config: Config, names: list[str]) -> None:
    # A Basic login naming a registered device is that device's code login on its label, never
    # the user's password (service.devices): one name cannot be both.
    if not StateDir(config.server.state_dir).devices.exists():
        return  # no device was ever registered (and none is created by looking)
    devices = device_registry(config).list()
    for name in names:
        for device in devices:
            if same_account(name, [device.name]) is not None:
                raise UserStoreError(
                    f"user {name!r} is the device {device.name!r} registered on label "
                    f"{device.label!r} (names equal under Unicode NFKC and case folding are one "
                    "account); remove the device first or choose another name"
                )


def _user_passwd(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    store.passwd(args.name, read_new_password(args, config.srp.min_password_length))
    print(f"python-est: password of {args.name!r} changed")
    return 0


def _user_remove(args: argparse.Namespace, config: Config) -> int:
    _store(config).remove(args.name)
    print(f"python-est: removed user {args.name!r}")
    return 0


def _user_list(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    for name in store.list_users():
        allowed = ", ".join(escape(allowed) for allowed in store.allowed_names(name))
        print(f"{escape(name)}\tmay request: {allowed}")
    return 0


def _user_allow(args: argparse.Namespace, config: Config) -> int:
    _store(config).set_allowed_names(args.name, tuple(args.allowed))
    print(f"python-est: {args.name!r} may request: {', '.join(map(escape, args.allowed))}")
    return 0


def _user_import(args: argparse.Namespace, config: Config) -> int:
    if args.format == "file":
        return import_user_file(args, config)
    target = user_store_path(config)
    creates = args.format == "tlslite" and _creates_store(config, target)
    store = None if creates else _store(config)
    read = read_tlslite_verifierdb if args.format == "tlslite" else read_openssl_srpvfile
    found = read(Path(args.path))
    _refuse_device_names(config, [name for name, _ in found.users])
    if store is None:
        # The older python-est's users become the store in one write: no empty store first.
        UserStore.create_imported(target, found)
        listed = ", ".join(escape(name) for name, _ in found.users)
        print(f"python-est: created {target} with {len(found.users)} user(s): {listed}")
        return 0
    if args.format == "openssl":
        names = store.import_openssl_srpvfile(Path(args.path), overwrite=args.overwrite)
    else:
        names = store.import_tlslite_verifierdb(Path(args.path), overwrite=args.overwrite)
    print(f"python-est: imported {len(names)} user(s): {', '.join(map(escape, names))}")
    return 0


def _creates_store(config: Config, target: Path) -> bool:
    # Only into an existing state directory: the CA and the rest are `init`'s to create.
    enabled = config.srp.enabled and not config.ledger.url
    return enabled and not target.exists() and target.parent.is_dir()


def read_new_password(args: argparse.Namespace, min_length: int) -> str:
    """A new password from stdin (`--password-stdin`) or typed twice without echo, of at least
    `min_length` characters (`[srp] min_password_length`)."""
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UserStoreError("the passwords do not match")
    if not password:
        raise UserStoreError("the password must not be empty")
    if len(password) < min_length:
        raise UserStoreError(
            f"the password has {len(password)} characters; at least {min_length} are required "
            "([srp] min_password_length)"
        )
    return password
