"""`python-est devices add|list|remove|import`: pre-registered devices and one-time codes.

Works while the server runs (the registry is a SQLite file in the state directory that every
server process reads per request). A code is printed once and stored only as a hash: whoever
loses it registers the device again (`remove`, then `add`).

A generated code also works as a TLS-SRP password: its SRP verifier (`[srp] group_bits`) is
stored beside the hash. An SRP verifier is a fast function of the password, so whoever reads the
registry can test guesses at it quickly: fine for 160 random bits, not for an operator's chosen
password, which gets one only with `--srp`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from python_est.app.access import device_registry
from python_est.cli.commands.user import read_new_password
from python_est.config import Config
from python_est.devices import (
    DeviceRegistry,
    Registration,
    Row,
    SrpVerifier,
    check_name,
    default_name,
    generate_code,
    parse_expires,
    parse_san,
    parse_subject,
    read_csv,
)
from python_est.errors import ConfigError, UserStoreError
from python_est.safetext import escape
from python_est.state import is_first_start, open_state
from python_est.state.guards import init_command
from python_est.usernames import same_account
from python_est.users.srp import compute_verifier, new_salt


def add_command(sub: Any) -> None:
    """Register `devices` on the top-level subparsers `sub`."""
    devices = sub.add_parser(
        "devices", help="pre-register devices: one-time enrollment codes for exact names"
    )
    actions = devices.add_subparsers(title="devices commands", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="register a device and print its one-time code (or --password-stdin)"
    )
    add.add_argument("--label", required=True, help='the CA label ("" for the default)')
    add.add_argument("--subject", required=True, help="the exact subject, e.g. CN=dev42")
    add.add_argument(
        "--san", action="append", default=[], help="DNS:, IP:, email: or URI: (repeatable)"
    )
    add.add_argument("--expires", default="7d", help="30m, 12h, 7d, 2w, an ISO time, or never")
    add.add_argument("--name", help="the device's name, its HTTP Basic user (default: the CN)")
    add.add_argument(
        "--password-stdin", action="store_true", help="read a password instead of making a code"
    )
    add.add_argument(
        "--srp",
        action="store_true",
        help="with --password-stdin: let the password also be a TLS-SRP password (its verifier "
        "is a fast function of it, see docs/integrations.md)",
    )
    add.set_defaults(func=_add)
    listing = actions.add_parser("list", help="registered devices and their state")
    listing.add_argument("--label", help="only this label")
    listing.set_defaults(func=_list)
    remove = actions.add_parser("remove", help="remove a registration (its code stops working)")
    remove.add_argument("--label", required=True)
    remove.add_argument("name")
    remove.set_defaults(func=_remove)
    imp = actions.add_parser(
        "import",
        help="register the devices of a CSV file (columns: label, subject, and optionally san, "
        "expires, name) and print name,label,code lines",
    )
    imp.add_argument("path")
    imp.add_argument("--expires", default="7d", help="for rows without an expires value")
    imp.set_defaults(func=_import)


def _registry(config: Config, label: str) -> DeviceRegistry:
    if label not in config.labels:
        known = ", ".join(repr(name) for name in config.labels)
        raise ConfigError(config.source, None, None, f"no CA label {label!r} (known: {known})")
    if is_first_start(config):
        raise ConfigError(
            config.source,
            "server",
            "state_dir",
            f"no python-est state in {config.server.state_dir}; check -c, or create it with "
            f"`{init_command(config)}`",
        )
    return device_registry(config)


def _add(args: argparse.Namespace, config: Config) -> int:
    registry = _registry(config, args.label)
    now = datetime.now(timezone.utc)
    try:
        subject = parse_subject(args.subject)
        sans = tuple(parse_san(san) for san in args.san)
        expires_at = parse_expires(args.expires, now)
        if expires_at is not None and expires_at <= now:
            raise ValueError(f"expiry {args.expires!r} is in the past")
        name = check_name(args.name) if args.name else default_name(subject)
    except ValueError as exc:
        raise UserStoreError(str(exc)) from None
    if args.srp and not args.password_stdin:
        raise UserStoreError(
            "--srp goes with --password-stdin (generated codes always work over SRP)"
        )
    refuse_user_names(config, [name])
    if args.password_stdin:
        code = read_new_password(args, config.srp.min_password_length)
    else:
        code = generate_code()
    registration = Registration(args.label, name, subject, sans, now, expires_at)
    srp = srp_verifier(config, name, code) if args.srp or not args.password_stdin else None
    registry.add(registration, code, chosen=args.password_stdin, srp=srp)
    until = "never expires" if expires_at is None else f"valid until {_when(expires_at)}"
    print(f"python-est: registered device {name!r} on label {args.label!r} for {subject}; {until}")
    if not args.password_stdin:
        print(f"user: {name}\ncode: {code}")
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    registry = _registry(config, args.label or "")
    now = datetime.now(timezone.utc)
    for device in registry.list(args.label):
        if device.used_at is not None:
            state = f"used {_when(device.used_at)} serial {device.serial}"
        elif not device.usable(now):
            state = "expired"
        else:
            state = "usable" + (f" until {_when(device.expires_at)}" if device.expires_at else "")
        sans = " ".join(escape(san) for san in device.sans) or "-"
        state += ", basic+srp" if device.srp else ", basic"
        print(
            f"{escape(device.label) or '-'}\t{escape(device.name)}\t{escape(device.subject)}\t"
            f"{sans}\t{state}"
        )
    return 0


def _remove(args: argparse.Namespace, config: Config) -> int:
    if not _registry(config, args.label).remove(args.label, args.name):
        raise UserStoreError(f"label {args.label!r} has no device named {args.name!r}")
    print(f"python-est: removed device {args.name!r} from label {args.label!r}")
    return 0


def _import(args: argparse.Namespace, config: Config) -> int:
    now = datetime.now(timezone.utc)
    path = Path(args.path)
    try:
        default = parse_expires(args.expires, now)
        rows = read_csv(path, now, default)
    except ValueError as exc:
        raise UserStoreError(str(exc)) from None
    except OSError as exc:
        raise UserStoreError(f"{path}: {exc.strerror}") from None
    for row in rows:
        if row.label not in config.labels:
            raise UserStoreError(f"{path}:{row.line}: no CA label {row.label!r}")
    registry = _registry(config, "")
    for row in rows:
        if registry.get(row.label, row.name) is not None:
            raise UserStoreError(
                f"{path}:{row.line}: label {row.label!r} already has a device named {row.name!r}"
            )
    refuse_user_names(config, [row.name for row in rows], where=f"{path}: ")
    _refuse_srp_ambiguity(registry, rows, path)
    # Checked in full first, so a bad line imports nothing; codes go to stdout only.
    for row in rows:
        code = generate_code()
        registry.add(
            Registration(row.label, row.name, row.subject, row.sans, now, row.expires_at),
            code,
            srp=srp_verifier(config, row.name, code),
        )
        sys.stdout.write(f"{row.name},{row.label},{code}\n")
    print(f"python-est: registered {len(rows)} device(s) from {path}", file=sys.stderr)
    return 0


def srp_verifier(config: Config, name: str, code: str) -> SrpVerifier:
    """The code's TLS-SRP verifier in the server's group (RFC 5054 §2.4)."""
    salt = new_salt()
    bits = config.srp.group_bits
    return bits, salt, compute_verifier(bits, salt, name.encode(), code.encode())


def _refuse_srp_ambiguity(registry: DeviceRegistry, rows: list[Row], path: Path) -> None:
    # A TLS-SRP handshake names no label: one unused SRP code per name (`DeviceRegistry.add`).
    labels: dict[str, str] = {}
    for row in rows:
        taken = registry.srp_labels(row.name)
        other = taken[0] if taken else labels.get(row.name)
        if other is not None:
            raise UserStoreError(
                f"{path}:{row.line}: device name {row.name!r} already has an unused TLS-SRP "
                f"code on label {other!r}; a TLS-SRP handshake names no label, so choose "
                "another name"
            )
        labels[row.name] = row.label


def refuse_user_names(config: Config, names: list[str], *, where: str = "") -> None:
    """Refuse a device name that is, or folds to, a user of the user store.

    A Basic login whose user is a device registered on the label is a code login, and the user
    store is not consulted for it (`service.devices`): a device named after a user would
    shadow that user's password on the label, and a look-alike one would pass for it in logs.

    Raises:
        UserStoreError: naming the device and the user.
    """
    if not config.srp.enabled:
        return
    with open_state(config, create=False) as state:
        assert state.users is not None  # enabled above
        users = state.users.list_users()
    for name in names:
        user = same_account(name, users)
        if user is not None:
            raise UserStoreError(
                f"{where}device name {name!r} is the user {user!r} of the user store (names "
                "equal under Unicode NFKC and case folding are one account); choose another "
                "--name"
            )


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.isoformat(timespec="seconds")
