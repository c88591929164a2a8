"""`python-est ca ...`: list and show the configured CAs; create a `[ca:NAME]` CA; roll a root.

`ca create NAME` is the only command that generates a `[ca:NAME]` CA (servers never do): it
prints what it wrote and refuses to replace an existing CA. `ca rollover [NAME]` starts a root
key rollover and `--finish` retires the old root (docs/ca.md, "Root rollover").
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from python_est.ca import CertificateAuthority
from python_est.cli.commands.certs import publish_crl
from python_est.cli.logs import audit_operator_action
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.errors import ConfigError
from python_est.ledger import serial_hex
from python_est.safetext import escape
from python_est.state import State, load_ca, open_state
from python_est.state.cafiles import create_named_ca, key_location
from python_est.state.rollover import begin, finish, load_rollover, refuse_unsupported
from python_est.state.server_tls import create_server_credentials


def add_command(sub: Any) -> None:
    """Register `ca` on the top-level subparsers `sub`."""
    ca = sub.add_parser("ca", help="list, show and create the CAs")
    actions = ca.add_subparsers(title="ca commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="every CA: name, subject, expiry, labels")
    listing.set_defaults(func=_list)
    show = actions.add_parser("show", help="one CA: subject, key location, expiry, fingerprint")
    show.add_argument("name", help='"default" for [ca], or the NAME of a [ca:NAME]')
    show.set_defaults(func=_show)
    create = actions.add_parser("create", help="generate the [ca:NAME] CA under the state dir")
    create.add_argument("name")
    create.set_defaults(func=_create)
    rollover = actions.add_parser(
        "rollover", help="new root and link certificates (RFC 7030 4.1.3); --finish retires"
    )
    rollover.add_argument("name", nargs="?", default=DEFAULT_CA)
    rollover.add_argument("--finish", action="store_true", help="retire the old root")
    rollover.add_argument(
        "--force", action="store_true", help="with --finish: even while old certificates are valid"
    )
    rollover.set_defaults(func=_rollover)


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint as `openssl x509 -fingerprint -sha256` prints it."""
    return ":".join(f"{byte:02X}" for byte in cert.fingerprint(hashes.SHA256()))


def labels_of(config: Config, name: str) -> list[str]:
    """The labels whose CA is `name`, as path segments ("" shows as "(default label)")."""
    return [label or "(default label)" for label, cfg in config.labels.items() if cfg.ca == name]


def _list(args: argparse.Namespace, config: Config) -> int:
    status = 0
    for name in config.ca_names:
        labels = ", ".join(map(escape, labels_of(config, name))) or "-"
        try:
            ca = load_ca(config, name)
        except ConfigError as exc:
            print(f"{name}\tunavailable: {exc.problem}\tlabels: {labels}")
            status = 1
            continue
        cert = ca.certificate
        print(
            f"{name}\t{escape(cert.subject.rfc4514_string())}\t"
            f"until {cert.not_valid_after_utc:%Y-%m-%d}\t{_days_left(cert)}\tlabels: {labels}"
        )
    return status


def _show(args: argparse.Namespace, config: Config) -> int:
    name = args.name
    if name not in config.ca_names:
        print(
            f"python-est: no CA {name!r} (configured: {', '.join(config.ca_names)})",
            file=sys.stderr,
        )
        return 1
    ca = load_ca(config, name)
    _describe(config, name, ca)
    return 0


def _describe(config: Config, name: str, ca: CertificateAuthority) -> None:
    cert = ca.certificate
    crl = config.crl.for_ca(name)
    print(f"CA {name}")
    print(f"subject:      {escape(cert.subject.rfc4514_string())}")
    print(f"issuer:       {escape(cert.issuer.rfc4514_string())}")
    print(f"key:          {key_location(config, name)}")
    print(f"key type:     {_key_text(ca)}")
    print(f"valid:        {cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z to ", end="")
    print(f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z ({_days_left(cert)})")
    print(f"serial:       {cert.serial_number:X}")
    print(f"SHA-256:      {fingerprint(cert)}")
    for above in ca.chain[1:]:
        print(f"chain:        {escape(above.subject.rfc4514_string())} ({fingerprint(above)})")
    print(f"labels:       {', '.join(map(escape, labels_of(config, name))) or '-'}")
    if config.crl.enabled:
        print(f"CRL:          {crl.path} (file {crl.file})")
    rollover = load_rollover(config, name) if config.ca_config(name).cert_file is None else None
    if rollover is not None:
        print(
            f"rollover:     in progress; old root SHA-256 {fingerprint(rollover.old.certificate)}"
        )
        print(f"              (finish: python-est ca rollover {name} --finish)")


def _create(args: argparse.Namespace, config: Config) -> int:
    ca, folder = create_named_ca(config, args.name)
    cert = ca.certificate
    print(
        f"python-est: created CA {args.name} ({escape(cert.subject.rfc4514_string())}) in {folder}"
    )
    token = config.cas[args.name].pkcs11
    if token is not None:
        print(
            f"python-est: its key {token.key_label!r} was created on the token {token.token!r} "
            "(not extractable); the folder holds only certificates"
        )
    print(f"python-est: SHA-256 {fingerprint(cert)}; back up {folder} with the rest of the state")
    _audit("ca-create", "created", args.name, cert)
    return 0


def _rollover(args: argparse.Namespace, config: Config) -> int:
    name = args.name
    if name not in config.ca_names:
        print(
            f"python-est: no CA {name!r} (configured: {', '.join(config.ca_names)})",
            file=sys.stderr,
        )
        return 1
    if args.force and not args.finish:
        print("python-est: --force goes with --finish", file=sys.stderr)
        return 1
    refuse_unsupported(config, name)  # before the state (and a token) is opened
    with open_state(config, create=False) as state:
        if args.finish:
            _finish(config, state, name, force=args.force)
        else:
            _begin(config, state, name)
    # The CRLs of the roots that now sign, published at once (a server picks the files up).
    with open_state(config, create=False) as state:
        return publish_crl(config, state, name)


def _begin(config: Config, state: State, name: str) -> None:
    rolled = begin(config, name, state.ca_named(name))
    new, old = fingerprint(rolled.new.certificate), fingerprint(rolled.old.certificate)
    print(f"python-est: CA {name}: the new root {new} issues from now on")
    print(f"python-est: the old root {old} stays trusted; /cacerts returns NewWithNew,")
    print("python-est: NewWithOld, OldWithNew and OldWithOld until you retire the old root with")
    print(f"python-est: `python-est ca rollover {name} --finish`; restart or reload the server")
    _audit("ca-rollover", "started", name, rolled.new.certificate)


def _finish(config: Config, state: State, name: str, *, force: bool) -> None:
    rollover = state.rollovers.get(name)
    done = finish(config, name, state.ledger, force=force)
    assert rollover is not None
    print(f"python-est: CA {name}: old root retired; a copy of it and its key is in {done.retired}")
    if done.outstanding:
        print(f"python-est: {done.outstanding} certificate(s) of the old root were still valid")
    _audit("ca-rollover", "finished", name, rollover.new.certificate)
    if name == DEFAULT_CA and config.tls.cert_file is None:
        # The generated server certificate was signed by the old key, which clients that
        # trust only the new root cannot follow: issue it again from the new root.
        create_server_credentials(config, rollover.new)
        print("python-est: the TLS server certificate was issued again by the new root")
    elif name == DEFAULT_CA:
        print("python-est: [tls] cert_file is yours: make sure its chain leads to the new root")
    print("python-est: restart or reload the server")


def _audit(event: str, result: str, name: str, cert: x509.Certificate) -> None:
    audit_operator_action(
        event,
        result,
        serial=serial_hex(cert.serial_number),
        subject=cert.subject.rfc4514_string(),
        requester="admin",
        auth="admin",
        label="",
        ca=name,
    )


def _days_left(cert: x509.Certificate) -> str:
    left = cert.not_valid_after_utc - datetime.now(timezone.utc)
    return "expired" if left.total_seconds() <= 0 else f"{left.days} days left"


def _key_text(ca: CertificateAuthority) -> str:
    key = ca.certificate.public_key()
    size = getattr(key, "key_size", None)
    curve = getattr(key, "curve", None)
    if curve is not None:
        return f"EC {curve.name}"
    return f"RSA {size}" if size is not None else type(key).__name__
