"""`python-est kek add|list|remove`: key-encryption keys for encrypted /serverkeygen keys.

A device whose CSR names a KEK by its DecryptKeyIdentifier (RFC 7030 §4.4.1.1) gets its
server-generated key wrapped with it. KEKs are per CA label and live in the state directory
(mode 0600, `python_est.keks`); the server reads them on each request, so no reload is needed.
The key value is read from a file or stdin, as hex, and is never printed or logged.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from python_est.audit import audit
from python_est.config import Config
from python_est.keks import KekStore, parse_kek
from python_est.state import open_state
from python_est.statedir import StateDir


def add_command(sub: Any) -> None:
    """Register `kek` on the top-level subparsers `sub`."""
    kek = sub.add_parser("kek", help="key-encryption keys for encrypted /serverkeygen keys")
    actions = kek.add_subparsers(title="kek commands", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="register a KEK (hex, 128/192/256 bits)")
    add.add_argument("kek_id", metavar="ID", help="the DecryptKeyIdentifier devices send")
    add.add_argument("--file", default="-", help="file holding the key in hex ('-': stdin)")
    add.add_argument("--label", default="", help="the CA label (default: the unlabelled one)")
    add.add_argument("--replace", action="store_true", help="overwrite an existing KEK of ID")
    add.set_defaults(func=_reported(_add))
    listing = actions.add_parser("list", help="the registered KEKs (never their values)")
    listing.set_defaults(func=_reported(_list))
    remove = actions.add_parser("remove", help="remove a KEK")
    remove.add_argument("kek_id", metavar="ID")
    remove.add_argument("--label", default="", help="the CA label (default: the unlabelled one)")
    remove.set_defaults(func=_reported(_remove))


_Action = Callable[[argparse.Namespace, Config], int]


def _reported(action: _Action) -> _Action:
    # A bad id, key, file or label is one line naming it, exit status 1.
    def run(args: argparse.Namespace, config: Config) -> int:
        try:
            return action(args, config)
        except ValueError as exc:
            print(f"python-est: kek: {exc}", file=sys.stderr)
            return 1

    return run


def _store(config: Config) -> KekStore:
    # Opening the state first stops a command run from the wrong folder (or without -c) with the
    # state path and `init`, instead of leaving a KEK file the server never reads.
    with open_state(config, create=False):
        pass
    return KekStore(StateDir(config.server.state_dir).keks)


def _check_label(config: Config, label: str) -> None:
    if label not in config.labels:
        raise ValueError(f"unknown CA label {label!r} (not in {config.source})")


def _add(args: argparse.Namespace, config: Config) -> int:
    _check_label(config, args.label)
    store = _store(config)
    source = "stdin" if args.file == "-" else args.file
    try:
        if args.file == "-":
            text = sys.stdin.buffer.read()
        else:
            with open(args.file, "rb") as handle:
                text = handle.read()
        key = parse_kek(text)
    except OSError as exc:
        raise ValueError(f"{source}: {exc.strerror}") from None
    except ValueError as exc:
        raise ValueError(f"{source}: {exc}") from None
    replaced = store.add(args.label, args.kek_id, key, replace=args.replace)
    verb = "replaced" if replaced else "added"
    print(f"python-est: {verb} {len(key) * 8}-bit KEK {args.kek_id!r} on label {args.label!r}")
    audit("kek", verb, "KEK %r on label %r", args.kek_id, args.label, kek=args.kek_id)
    return 0


def _list(args: argparse.Namespace, config: Config) -> int:
    keks = _store(config).all()
    if not keks:
        print("python-est: no KEKs")
    for kek in keks:
        print(f"label={kek.label!r} id={kek.kek_id} bits={kek.bits} added={kek.added}")
    return 0


def _remove(args: argparse.Namespace, config: Config) -> int:
    if not _store(config).remove(args.label, args.kek_id):
        print(f"python-est: no KEK {args.kek_id!r} on label {args.label!r}; nothing removed")
        return 1
    print(f"python-est: removed KEK {args.kek_id!r} from label {args.label!r}")
    audit("kek", "removed", "KEK %r on label %r", args.kek_id, args.label, kek=args.kek_id)
    return 0
