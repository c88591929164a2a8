"""Administration commands: `user ...` and `certs ...`."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from python_est.cli.crl_cmd import add_crl_command, publish_crl
from python_est.cli.database import add_db_commands, import_user_file
from python_est.cli.ledger_cmd import add_ledger_commands
from python_est.cli.logs import audit_operator_action
from python_est.cli.requests import add_request_commands
from python_est.config import Config
from python_est.errors import UserStoreError
from python_est.ledger import REVOCATION_REASONS, IssuedCertificate, UnknownSerial, serial_hex
from python_est.safetext import escape
from python_est.state import open_state
from python_est.users import UserDirectory


def add_admin_commands(sub: Any) -> None:
    """Register `user` and `certs` on the top-level subparsers `sub`."""
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

    certs = sub.add_parser("certs", help="list, show and revoke issued certificates")
    cert_cmds = certs.add_subparsers(title="certs commands", metavar="ACTION", required=True)
    clist = cert_cmds.add_parser("list", help="issued certificates, newest first")
    clist.add_argument("--label")
    clist.add_argument("--revoked", action="store_true", help="only revoked certificates")
    clist.add_argument("--limit", type=int, default=100)
    clist.set_defaults(func=_certs_list)
    show = cert_cmds.add_parser("show", help="one certificate's ledger record and PEM")
    show.add_argument("serial", help="serial number in hex (as `certs list` prints it)")
    show.set_defaults(func=_certs_show)
    revoke = cert_cmds.add_parser("revoke", help="revoke a certificate")
    revoke.add_argument("serial")
    revoke.add_argument("--reason", default="unspecified", choices=sorted(REVOCATION_REASONS))
    revoke.set_defaults(func=_certs_revoke)
    add_crl_command(cert_cmds)
    add_request_commands(sub)
    add_db_commands(sub)
    add_ledger_commands(sub)


def _store(config: Config) -> UserDirectory:
    if not config.srp.enabled:
        raise UserStoreError("the user store is disabled ([srp] enabled = no)")
    store = open_state(config, create=True).users
    assert store is not None  # enabled above
    return store


def _user_add(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    password = read_new_password(args)
    store.add(
        args.name,
        password,
        group_bits=config.srp.group_bits,
        allowed_names=tuple(args.allow) or None,
    )
    print(f"python-est: added user {args.name!r}")
    return 0


def _user_passwd(args: argparse.Namespace, config: Config) -> int:
    store = _store(config)
    store.passwd(args.name, read_new_password(args))
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
    store = _store(config)
    if args.format == "openssl":
        names = store.import_openssl_srpvfile(Path(args.path), overwrite=args.overwrite)
    else:
        names = store.import_tlslite_verifierdb(Path(args.path), overwrite=args.overwrite)
    print(f"python-est: imported {len(names)} user(s): {', '.join(map(escape, names))}")
    return 0


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise UserStoreError(f"not a hex serial number: {text!r}") from None


def _describe(entry: IssuedCertificate) -> str:
    status = (
        f"revoked {entry.revoked_at:%Y-%m-%d} ({entry.revocation_reason})"
        if entry.revoked_at
        else "valid"
    )
    return (
        f"{entry.serial:X}\t{escape(entry.subject)}\t{escape(entry.label) or '-'}\t"
        f"{entry.operation}\t{escape(entry.requester)} ({entry.auth_method})\t"
        f"until {entry.not_after:%Y-%m-%d}\t{status}"
    )


def _certs_list(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=True).ledger
    entries = ledger.list_certificates(
        limit=args.limit, label=args.label, revoked=True if args.revoked else None
    )
    for entry in entries:
        print(_describe(entry))
    return 0


def _certs_show(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=True).ledger
    entry = ledger.get(_parse_serial(args.serial))
    if entry is None:
        print(f"python-est: no certificate with serial {args.serial}", file=sys.stderr)
        return 1
    print(_describe(entry))
    print(f"SANs: {', '.join(map(escape, entry.sans)) or '-'}")
    print(
        f"issued at {entry.issued_at.isoformat()}, "
        f"valid {entry.not_before.isoformat()} to {entry.not_after.isoformat()}"
    )
    print(entry.pem.rstrip())
    return 0


def _certs_revoke(args: argparse.Namespace, config: Config) -> int:
    state = open_state(config, create=True)
    try:
        entry = state.ledger.revoke(_parse_serial(args.serial), args.reason)
    except UnknownSerial:
        print(f"python-est: no certificate with serial {args.serial}", file=sys.stderr)
        return 1
    # Effective at once: every handshake checks the ledger. The CRL tells everyone else.
    print(f"python-est: revoked {entry.serial:X} ({entry.revocation_reason})")
    audit_operator_action(
        "revoke",
        "revoked",
        serial=serial_hex(entry.serial),
        subject=entry.subject,
        requester=entry.requester,
        auth=entry.auth_method,
        label=entry.label,
        reason=entry.revocation_reason,
    )
    return publish_crl(config, state)


def read_new_password(args: argparse.Namespace) -> str:
    """A new password from stdin (`--password-stdin`) or typed twice without echo."""
    if getattr(args, "password_stdin", False):
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New password: ")
        if getpass.getpass("Repeat password: ") != password:
            raise UserStoreError("the passwords do not match")
    if not password:
        raise UserStoreError("the password must not be empty")
    return password
