"""`python-est certs ...`: list, show and revoke issued certificates; publish the CRL."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptography import x509

from python_est.app.backends import build_backends
from python_est.app.crl import build_crl_publisher
from python_est.ca import crl_number
from python_est.cli.logs import audit_operator_action
from python_est.config import Config
from python_est.config.model import DEFAULT_CA
from python_est.errors import EstError, NotImplementedOperation, UserStoreError
from python_est.ledger import (
    REVOCATION_REASONS,
    IssuedCertificate,
    Ledger,
    UnknownSerial,
    serial_hex,
)
from python_est.ops.revocation import CrlPublisher
from python_est.safetext import escape
from python_est.state import State, open_state


def add_command(sub: Any) -> None:
    """Register `certs` on the top-level subparsers `sub`."""
    certs = sub.add_parser("certs", help="list, show and revoke issued certificates")
    cert_cmds = certs.add_subparsers(title="certs commands", metavar="ACTION", required=True)
    clist = cert_cmds.add_parser("list", help="issued certificates, newest first")
    clist.add_argument("--label")
    clist.add_argument("--ca", help='only certificates this CA issued ("default" for [ca])')
    clist.add_argument("--revoked", action="store_true", help="only revoked certificates")
    clist.add_argument("--limit", type=int, default=100)
    clist.set_defaults(func=_certs_list)
    show = cert_cmds.add_parser("show", help="one certificate's ledger record and PEM")
    show.add_argument("serial", help="serial number in hex (as `certs list` prints it)")
    show.set_defaults(func=_certs_show)
    revoke = cert_cmds.add_parser("revoke", help="revoke a certificate")
    revoke.add_argument("serial")
    revoke.add_argument("--reason", default="unspecified", choices=sorted(REVOCATION_REASONS))
    revoke.add_argument("--ca", help="refuse unless this CA issued the certificate")
    revoke.set_defaults(func=_certs_revoke)
    crl = cert_cmds.add_parser(
        "crl", help="regenerate the CRL now and write it (for a timer on an idle server)"
    )
    crl.set_defaults(func=_certs_crl)


def publish_crl(config: Config, state: State, ca_name: str = DEFAULT_CA) -> int:
    """Regenerate the CRLs of the CA `ca_name` (its root's, and its old root's during a
    rollover) and write each to its file; returns the exit status.

    A running server serves the new files from its next CRL request on. Without `[crl]`
    enabled, nothing is done.

    Raises:
        ConfigError: the CA cannot sign CRLs.
    """
    status = 0
    for old_root in (False, True) if ca_name in state.rollovers else (False,):
        publisher = build_crl_publisher(config, state, ca_name, old_root=old_root)
        if publisher is not None:
            status = max(status, _publish(publisher))
    return status


def _publish(publisher: CrlPublisher) -> int:
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
    state = open_state(config, create=False)
    return max(publish_crl(config, state, name) for name in config.ca_names)


def _parse_serial(text: str) -> int:
    cleaned = text.strip().lower().removeprefix("0x").replace(":", "")
    try:
        return int(cleaned, 16)
    except ValueError:
        raise UserStoreError(f"not a hex serial number: {text!r}") from None


def _describe(entry: IssuedCertificate) -> str:
    ca = "" if entry.ca == DEFAULT_CA else f"\tCA {escape(entry.ca)}"
    status = (
        f"revoked {entry.revoked_at:%Y-%m-%d} ({entry.revocation_reason})"
        if entry.revoked_at
        else "valid"
    )
    return (
        f"{entry.serial:X}\t{escape(entry.subject)}\t{escape(entry.label) or '-'}\t"
        f"{entry.operation}\t{escape(entry.requester)} ({entry.auth_method})\t"
        f"until {entry.not_after:%Y-%m-%d}\t{status}{ca}"
    )


def _certs_list(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=False).ledger
    _check_ca(config, args.ca)
    entries = ledger.list_certificates(
        limit=args.limit, label=args.label, revoked=True if args.revoked else None, ca=args.ca
    )
    for entry in entries:
        print(_describe(entry))
    return 0


def _certs_show(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=False).ledger
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


def _check_ca(config: Config, name: str | None) -> None:
    if name is not None and name not in config.ca_names:
        known = ", ".join(config.ca_names)
        raise UserStoreError(f"--ca {name!r}: no such CA (configured: {known})")


def _certs_revoke(args: argparse.Namespace, config: Config) -> int:
    _check_ca(config, args.ca)
    state = open_state(config, create=False)
    issued = state.ledger.get(_parse_serial(args.serial))
    if issued is not None and not _revoked_at_backend(config, state.ledger, issued, args.reason):
        return 1
    try:
        entry = state.ledger.revoke(_parse_serial(args.serial), args.reason, ca=args.ca)
    except UnknownSerial:
        of_ca = "" if args.ca is None else f" issued by CA {args.ca}"
        print(f"python-est: no certificate with serial {args.serial}{of_ca}", file=sys.stderr)
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
        ca=entry.ca,
    )
    if entry.ca not in config.ca_names:
        return 0  # issued by a label's upstream or CA handler: our CRLs do not list it
    return publish_crl(config, state, entry.ca)


def _revoked_at_backend(
    config: Config, ledger: Ledger, entry: IssuedCertificate, reason: str
) -> bool:
    # A certificate a CA handler issued is revoked there first (issue 18 item 1); one from an
    # upstream EST server cannot be (EST has no revocation), which is said, not hidden.
    label = config.labels.get(entry.label)
    if label is None or label.backend == "embedded":
        return True
    backend = build_backends(config, ledger)[label.name]
    try:
        backend.revoke(x509.load_pem_x509_certificate(entry.pem.encode("ascii")), reason)
    except NotImplementedOperation as exc:
        print(f"python-est: {exc.detail}; it is revoked here only", file=sys.stderr)
    except EstError as exc:
        print(f"python-est: not revoked: {exc.detail}", file=sys.stderr)
        return False
    return True
