#!/usr/bin/env python3
"""Time one issuance (CSR signature check + signing) for an RSA-2048 and a P-256 CA.

Usage, from the repository root:

    python scripts/bench_issue.py [-n 1000] [--csr-key-type ec-p256] [--ledger PATH]

CSRs are made before the clock starts (a pool of distinct keys, reused in turn), so the figures
cover `CertificateAuthority.issue` only, plus the ledger commit when `--ledger` is given. The
script prints figures and asserts nothing: it is a measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from python_est.ca import CertificateAuthority  # noqa: E402
from python_est.keys import KeyType, generate_private_key  # noqa: E402
from python_est.profile import IssuanceProfile  # noqa: E402

Recorder = Callable[[x509.Certificate], None]
CA_KEY_TYPES = (KeyType.RSA_2048, KeyType.EC_P256)
CSR_POOL = 32


def make_csrs(key_type: KeyType, count: int) -> list[x509.CertificateSigningRequest]:
    """Return `count` CSRs, each with its own key, a CN and one DNS SAN."""
    csrs = []
    for i in range(count):
        key = generate_private_key(key_type)
        name = f"device-{i}.bench.example"
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        )
        csrs.append(builder.sign(key, hashes.SHA256()))
    return csrs


def measure(
    ca: CertificateAuthority,
    csrs: Sequence[x509.CertificateSigningRequest],
    count: int,
    record: Recorder | None,
) -> list[float]:
    """Issue `count` certificates, cycling through `csrs`; return each duration in seconds."""
    profile = IssuanceProfile(name="bench")
    durations = []
    for i in range(count):
        csr = csrs[i % len(csrs)]
        start = time.perf_counter()
        cert = ca.issue(csr, profile)
        if record is not None:
            record(cert)
        durations.append(time.perf_counter() - start)
    return durations


def ledger_recorder(path: Path) -> Recorder:
    """Return a recorder that commits each certificate to a `SqliteLedger` at `path`."""
    # Imported here so the plain benchmark does not depend on the ledger.
    from python_est.ledger import IssuedCertificate, SqliteLedger

    ledger = SqliteLedger(path)

    def record(cert: x509.Certificate) -> None:
        entry = IssuedCertificate.from_certificate(
            cert, requester="bench", auth_method="admin", label="bench", operation="simpleenroll"
        )
        ledger.record(entry)

    return record


def report(title: str, durations: Sequence[float]) -> str:
    """Format median, p90 and throughput of `durations`."""
    median = statistics.median(durations)
    p90 = statistics.quantiles(durations, n=10)[-1]
    rate = len(durations) / sum(durations)
    return (
        f"{title:<44} n={len(durations):<6} median {median * 1e3:7.3f} ms   "
        f"p90 {p90 * 1e3:7.3f} ms   {rate:8.0f}/s"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--count", type=int, default=1000, help="issues per CA")
    parser.add_argument(
        "--csr-key-type", type=KeyType, default=KeyType.EC_P256, choices=list(KeyType)
    )
    parser.add_argument("--ledger", type=Path, help="also commit each certificate to this ledger")
    args = parser.parse_args(argv)
    if args.count < 2:
        parser.error("--count must be at least 2")

    csrs = make_csrs(args.csr_key_type, min(args.count, CSR_POOL))
    record = ledger_recorder(args.ledger) if args.ledger is not None else None
    step = "issue+ledger" if record is not None else "issue"
    for ca_key_type in CA_KEY_TYPES:
        ca = CertificateAuthority.create(
            common_name=f"Bench {ca_key_type.value}", key_type=ca_key_type, validity_days=30
        )
        measure(ca, csrs, min(args.count, 50), None)  # warm-up, not reported
        durations = measure(ca, csrs, args.count, record)
        title = f"CA {ca_key_type.value}, CSR {args.csr_key_type.value}, {step}"
        print(report(title, durations))
    return 0


if __name__ == "__main__":
    sys.exit(main())
