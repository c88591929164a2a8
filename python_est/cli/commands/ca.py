"""`python-est ca ...`: list and show the configured CAs; create a `[ca:NAME]` CA.

`ca create NAME` is the only command that generates a `[ca:NAME]` CA (servers never do): it
prints what it wrote and refuses to replace an existing CA.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from python_est.ca import CertificateAuthority
from python_est.cli.logs import audit_operator_action
from python_est.config import Config
from python_est.errors import ConfigError
from python_est.ledger import serial_hex
from python_est.safetext import escape
from python_est.state import load_ca
from python_est.state.cafiles import create_named_ca, key_location


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


def _create(args: argparse.Namespace, config: Config) -> int:
    ca, folder = create_named_ca(config, args.name)
    cert = ca.certificate
    print(
        f"python-est: created CA {args.name} ({escape(cert.subject.rfc4514_string())}) in {folder}"
    )
    print(f"python-est: SHA-256 {fingerprint(cert)}; back up {folder} with the rest of the state")
    audit_operator_action(
        "ca-create",
        "created",
        serial=serial_hex(cert.serial_number),
        subject=cert.subject.rfc4514_string(),
        requester="admin",
        auth="admin",
        label="",
        ca=args.name,
    )
    return 0


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
