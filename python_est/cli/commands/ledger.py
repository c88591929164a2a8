"""`python-est ledger verify`: prove the ledger is whole and that our CA signed all of it.

Checks, in order: SQLite's own integrity check and that every row's PEM parses and carries the
row's serial (`SqliteLedger.integrity_check`); that every row agrees with its certificate
(validity) and that the certificate's signature verifies against the CA the row names (one of
that CA's certificates; `--ca NAME` checks only the rows of that CA);
that serials are unique; and, with `--expect FILE`, that every serial listed there (for instance
the serials that clients report having received) is in the ledger. Serials are random, so
"no gaps" cannot mean consecutive numbers: it means nothing a client holds is missing.

Safe while the server runs (SQLite shares the file between processes). Exit status: 0 when the
ledger passes, 1 when a problem is found (each printed on its own line), 2 for configuration.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from python_est.app.backends import build_backends
from python_est.config import Config
from python_est.errors import EstError, UserStoreError
from python_est.ledger import IssuedCertificate, Ledger, serial_hex
from python_est.state import open_state
from python_est.state.rollover import past_roots

_PAGE = 500
_MAX_LISTED = 50  # problems printed one per line; beyond this only counted


def add_command(sub: Any) -> None:
    """Register `ledger verify` on the top-level subparsers `sub`."""
    ledger = sub.add_parser("ledger", help="check the ledger of issued certificates")
    actions = ledger.add_subparsers(title="ledger commands", metavar="ACTION", required=True)
    verify = actions.add_parser(
        "verify", help="integrity check, CA signatures, unique serials (exit 1 on a problem)"
    )
    verify.add_argument("--ca", help='only the certificates of this CA ("default" for [ca])')
    verify.add_argument(
        "--expect",
        metavar="FILE",
        help="a file of hex serials, one per line, that must all be in the ledger",
    )
    verify.set_defaults(func=_verify)


def verify_ledger(
    ledger: Ledger,
    integrity: Sequence[str],
    issuers: Mapping[str, Sequence[x509.Certificate]],
    *,
    ca: str | None = None,
) -> tuple[int, list[str]]:
    """Check every certificate row against its PEM, and its signature against its CA's.

    Args:
        ledger: the ledger to read.
        integrity: problems already found by the ledger's own integrity check.
        issuers: CA name to the certificates that may have signed for it (its `/cacerts`
            chain); a row naming a CA not in here is a problem.
        ca: only the rows of this CA (and the serial-count check is skipped).

    Returns:
        How many certificates were read, and the problems found (empty when all is well).
    """
    problems = list(integrity)
    before = ledger.count()
    seen: set[int] = set()
    for entry in _all_certificates(ledger, ca):
        if entry.serial in seen:
            continue  # a page shifted by a certificate issued while we read
        seen.add(entry.serial)
        label = serial_hex(entry.serial)
        try:
            cert = x509.load_pem_x509_certificate(entry.pem.encode("ascii"))
        except ValueError:
            continue  # already reported by the integrity check
        if (cert.not_valid_before_utc, cert.not_valid_after_utc) != (
            entry.not_before,
            entry.not_after,
        ):
            problems.append(f"certificate {label}: the row's validity differs from the PEM")
        if not any(_signed_by(cert, issuer) for issuer in issuers.get(entry.ca, ())):
            problems.append(f"certificate {label}: not signed by the CA {entry.ca!r}")
    # Rows are never deleted and serials are UNIQUE: with no issuance meanwhile, the distinct
    # serials read must be exactly the rows counted.
    if ca is None and ledger.count() == before and len(seen) != before:
        problems.append(f"{before} rows but {len(seen)} distinct serials read")
    total = len(seen)
    return total, problems


def missing_serials(ledger: Ledger, expected: Sequence[int]) -> list[int]:
    """The serials of `expected` that the ledger does not hold."""
    return [serial for serial in expected if ledger.get(serial) is None]


def _verify(args: argparse.Namespace, config: Config) -> int:
    expected = _read_serials(Path(args.expect)) if args.expect else []
    if args.ca is not None and args.ca not in config.ca_names:
        raise UserStoreError(
            f"--ca {args.ca!r}: no such CA (configured: {', '.join(config.ca_names)})"
        )
    with open_state(config, create=False) as state:
        # A rolled-over CA's earlier roots signed its older certificates.
        chains = {
            name: (*state.ca_named(name).chain, *past_roots(config, name))
            for name in config.ca_names
        }
        chains.update(_backend_issuers(config, state.ledger))
        total, problems = verify_ledger(
            state.ledger, state.ledger.integrity_check(), chains, ca=args.ca
        )
        absent = missing_serials(state.ledger, expected)
    problems += [f"certificate {serial_hex(s)}: expected but not recorded" for s in absent]
    if problems:
        for problem in problems[:_MAX_LISTED]:
            print(f"python-est: ledger: {problem}")
        if len(problems) > _MAX_LISTED:
            print(f"python-est: ledger: ... and {len(problems) - _MAX_LISTED} more problems")
        print(f"python-est: ledger FAILED: {len(problems)} problem(s) in {total} certificate(s)")
        return 1
    found = f"; all {len(expected)} expected serial(s) present" if args.expect else ""
    of_ca = "" if args.ca is None else f" of CA {args.ca}"
    print(
        f"python-est: ledger OK: {total} certificate(s){of_ca}, integrity ok, "
        f"all signed by their CA, serials unique{found}"
    )
    return 0


def _backend_issuers(config: Config, ledger: Ledger) -> dict[str, tuple[x509.Certificate, ...]]:
    # Certificates an upstream EST server or a CA handler issued are recorded under the CA
    # name "KIND:LABEL" and signed by its CA (issue 18 item 1): its /cacerts chain, asked now.
    issuers: dict[str, tuple[x509.Certificate, ...]] = {}
    for label, backend in build_backends(config, ledger).items():
        try:
            issuers[f"{backend.kind}:{label}"] = tuple(backend.ca_certs())
        except EstError as exc:
            print(f"python-est: ledger: the CA certificates of label {label!r}: {exc.detail}")
    return issuers


def _all_certificates(ledger: Ledger, ca: str | None) -> Iterator[IssuedCertificate]:
    offset = 0
    while True:
        page = ledger.list_certificates(limit=_PAGE, offset=offset, ca=ca)
        yield from page
        if len(page) < _PAGE:
            return
        offset += _PAGE


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _read_serials(path: Path) -> list[int]:
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserStoreError(f"cannot read the serial list {path}: {exc}") from None
    serials = []
    for line in lines:
        try:
            serials.append(int(line.lower().removeprefix("0x").replace(":", ""), 16))
        except ValueError:
            raise UserStoreError(f"not a hex serial number in {path}: {line[:40]!r}") from None
    return serials
