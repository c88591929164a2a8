"""`python-est requests list|show|approve|reject`: the manual-approval queue (RFC 7030 §4.2.3).

Works on the ledger while the server runs (SQLite shares the file between processes): a decision
takes effect on the client's next retry. An id may be abbreviated to any unique prefix. `list
--status issuing` shows approved requests that a server has claimed and is signing; `show` names
the claim's holder (host/pid/attempt).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cryptography import x509

from python_est.cli.csrview import describe_csr
from python_est.cli.logs import audit_operator_action
from python_est.config import Config
from python_est.ledger import (
    Ledger,
    PendingRequest,
    PendingStateError,
    PendingStatus,
    UnknownPendingRequest,
    serial_hex,
)
from python_est.safetext import escape
from python_est.state import open_state

_STATUS_CHOICES = [status.value for status in PendingStatus] + ["all"]


def add_command(sub: Any) -> None:
    """Register `requests` and its actions on the top-level subparsers `sub`."""
    requests = sub.add_parser(
        "requests", help="list, approve and reject requests awaiting manual approval"
    )
    actions = requests.add_subparsers(title="requests commands", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="requests, oldest first (default: pending ones)")
    listing.add_argument("--status", choices=_STATUS_CHOICES, default=PendingStatus.PENDING.value)
    listing.set_defaults(func=_list)
    show = actions.add_parser(
        "show", help="one request in full: its CSR decoded attribute by attribute, and the PEM"
    )
    show.add_argument("id", help="request id (or a unique prefix)")
    show.set_defaults(func=_show)
    approve = actions.add_parser("approve", help="approve: the client's next retry gets it")
    approve.add_argument("id", help="request id (or a unique prefix)")
    approve.add_argument("--reason", help="a note kept with the decision")
    approve.set_defaults(func=_decide, approve=True)
    reject = actions.add_parser("reject", help="reject: the client's retries get 403")
    reject.add_argument("id", help="request id (or a unique prefix)")
    reject.add_argument("--reason", required=True, help="told to the client in the 403")
    reject.set_defaults(func=_decide, approve=False)


def _list(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=False).ledger
    status = None if args.status == "all" else PendingStatus(args.status)
    requests = ledger.list_pending(status)
    for request in requests:
        print(_describe(request))
    if not requests:
        print(f"python-est: no {'' if status is None else status.value + ' '}requests")
    return 0


def _show(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=False).ledger
    request = _find(ledger, args.id)
    if request is None:
        return 1
    print(_describe(request))
    print(f"created {request.created_at.isoformat()}")
    if request.decided_at is not None:
        print(f"decided {request.decided_at.isoformat()}: {escape(request.reason or '-')}")
    if request.claimed_at is not None:
        # Who signs (or signed) it: an issuing request whose claim is old lost its holder.
        print(f"claimed {request.claimed_at.isoformat()} by {escape(request.claimed_by or '-')}")
    if request.serial is not None:
        print(f"issued serial {serial_hex(request.serial)}")
    if request.operation == "serverkeygen":  # the CSR key is ignored (RFC 7030 §4.4.1)
        print(f"retry match SHA-256 (requester, subject, SANs) {request.public_key_sha256}")
    else:
        print(f"key SHA-256 {request.public_key_sha256}")
    # What approving certifies, attribute by attribute (issue 13): the listing's one-line
    # subject can hide a multi-valued RDN, a look-alike letter or an extension.
    try:
        csr = x509.load_pem_x509_csr(request.csr_pem.encode("ascii"))
    except ValueError:
        print("CSR: unreadable")
    else:
        print("CSR:")
        for line in describe_csr(csr):
            print(line)
    print(request.csr_pem.rstrip())
    return 0


def _decide(args: argparse.Namespace, config: Config) -> int:
    ledger = open_state(config, create=False).ledger
    request = _find(ledger, args.id)
    if request is None:
        return 1
    try:
        decided = ledger.decide_pending(request.id, args.approve, args.reason)
    except PendingStateError as exc:
        print(
            f"python-est: request {request.id} is already {exc.request.status.value}",
            file=sys.stderr,
        )
        return 1
    except UnknownPendingRequest:
        print(f"python-est: no request {request.id}", file=sys.stderr)
        return 1
    print(f"python-est: request {decided.id} {decided.status.value} ({escape(decided.subject)})")
    audit_operator_action(
        "approve" if args.approve else "reject",
        decided.status.value,
        serial=None,
        subject=decided.subject,
        requester=decided.requester,
        auth=decided.auth_method,
        label=decided.label,
        request=decided.id,
        reason=decided.reason,
    )
    return 0


def _find(ledger: Ledger, text: str) -> PendingRequest | None:
    wanted = text.strip().lower()
    request = ledger.get_pending(wanted)
    if request is not None:
        return request
    matches = [r for r in ledger.list_pending() if wanted and r.id.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    problem = "matches several requests" if matches else "matches no request"
    print(f"python-est: {text!r} {problem}", file=sys.stderr)
    return None


def _describe(request: PendingRequest) -> str:
    return (
        f"{request.id}\t{request.created_at:%Y-%m-%d %H:%M:%S}\t{request.status.value}\t"
        f"{escape(request.label) or '-'}\t{request.operation}\t{escape(request.requester)} "
        f"({request.auth_method})\t{escape(request.subject)}\t{_sans(request.csr_pem)}"
    )


def _sans(csr_pem: str) -> str:
    # What the operator approves along with the subject.
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("ascii"))
        names = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return "SAN: -"
    except (ValueError, x509.DuplicateExtension):
        return "SAN: (unreadable)"
    return "SAN: " + ", ".join(
        f"{type(n).__name__.removesuffix('Name')}:{escape(str(n.value))}" for n in names
    )
