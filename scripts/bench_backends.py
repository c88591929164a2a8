#!/usr/bin/env python3
"""Enrollment latency through the `est` backend (RA mode) against the embedded CA, in one run.

Two python-est servers in this process on 127.0.0.1: the upstream (embedded CA) and the front,
whose default label issues with its own CA and whose label `ra` forwards to the upstream with
an RA certificate. Each request is a whole /simpleenroll over a new TLS 1.2 connection (Python
`ssl`, HTTP Basic, P-256 CSR); the two kinds alternate so both see the same machine load. The
`est` figure includes the upstream's own TLS handshake, authentication, signing and ledger
commit. Prints figures; asserts nothing.

    python scripts/bench_backends.py [--runs 40]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cryptography.x509.oid import ExtendedKeyUsageOID

from est_harness import (
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
    write_credentials,
)
from python_est.oids import ID_KP_CMC_RA

PASSWORD = "a long enough password"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="enrollments per backend")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        upstream = stack.enter_context(
            running_server(root / "upstream", "[label:fleet]\npassword_subjects = any\n")
        )
        cert, key = upstream.state.ca.issue_client_certificate(
            common_name="ra-1",
            extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH, ID_KP_CMC_RA),
        )
        ra_cert, ra_key = write_credentials(root, "ra-1", cert, key)
        front = stack.enter_context(
            running_server(
                root / "front",
                "[profile]\npassword_subjects = any\n"
                f"[label:ra]\nbackend = est\n"
                f"upstream_url = https://127.0.0.1:{upstream.port}/.well-known/est/fleet\n"
                f"upstream_ca_file = {upstream.ca_file}\n"
                f"upstream_client_cert = {ra_cert}\nupstream_client_key = {ra_key}\n",
            )
        )
        assert front.state.users is not None
        front.state.users.add("bench", PASSWORD)
        timings: dict[str, list[float]] = {"embedded": [], "est": []}
        paths = {
            "embedded": "/.well-known/est/simpleenroll",
            "est": "/.well-known/est/ra/simpleenroll",
        }
        headers = {"Content-Type": "application/pkcs10", "Authorization": basic("bench", PASSWORD)}
        for run in range(args.runs + 2):
            for kind, path in paths.items():
                csr, _ = make_csr(f"bench-{run}")
                raw = build_request("POST", path, csr_body(csr), headers, front.port)
                start = time.perf_counter()
                reply = https(front.port, raw, cafile=front.ca_file)
                elapsed = time.perf_counter() - start
                if reply.status != 200:
                    print(f"{kind}: HTTP {reply.status}: {reply.body[:200]!r}", file=sys.stderr)
                    return 1
                if run >= 2:  # the first two warm both paths up
                    timings[kind].append(elapsed * 1000)
        print(f"/simpleenroll over TLS 1.2, new connection each, {args.runs} runs per backend (ms)")
        print(f"{'backend':<10} {'median':>8} {'p90':>8} {'min':>8} {'max':>8}")
        for kind, values in timings.items():
            values.sort()
            p90 = values[int(0.9 * (len(values) - 1))]
            print(
                f"{kind:<10} {statistics.median(values):>8.1f} {p90:>8.1f} "
                f"{values[0]:>8.1f} {values[-1]:>8.1f}"
            )
        ratio = statistics.median(timings["est"]) / statistics.median(timings["embedded"])
        print(f"est / embedded median: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
