"""EST Complete Workflow Test: cacerts, bootstrap page, SRP enrollment, re-enrollment, csrattrs.

    python scripts/est_client.py SERVER_IP USER PASSWORD DEVICE [--cacert CA.pem]

Prints one numbered line per step ("[n] name: SUCCESS ..." or "[n] name: FAILED: reason") and
exits 1 if any step failed. Without --cacert the CA certificates are fetched unverified and
trusted only with --accept-fingerprint (RFC 7030 §4.1.1). Replaces the older
final_test_client.py; the logic lives in `python_est.client.workflow`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from python_est.client import WorkflowOptions, parse_key_type, run_workflow
from python_est.keys import KeyType


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("server", metavar="SERVER_IP", help="EST server address or name")
    parser.add_argument("user", metavar="USER", help="SRP user")
    parser.add_argument("password", metavar="PASSWORD", help="the user's password")
    parser.add_argument("device", metavar="DEVICE", help="common name to enroll")
    parser.add_argument("--port", type=int, default=8443)
    parser.add_argument("--cacert", type=Path, help="trust anchors (PEM) for the server")
    parser.add_argument(
        "--accept-fingerprint", metavar="HEX", help="without --cacert: the root's SHA-256"
    )
    parser.add_argument("--label", default="", help="CA label (default: none)")
    parser.add_argument("--bootstrap-path", default="/bootstrap")
    parser.add_argument("--out-dir", type=Path, help="output folder (default est-client-DEVICE)")
    parser.add_argument("--key-type", type=parse_key_type, default=KeyType.EC_P256)
    parser.add_argument("--timeout", type=float, default=30.0)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    options = WorkflowOptions(
        host=args.server,
        port=args.port,
        user=args.user,
        password=args.password,
        device=args.device,
        cacert=args.cacert,
        accept_fingerprint=args.accept_fingerprint,
        label=args.label,
        bootstrap_path=args.bootstrap_path,
        out_dir=args.out_dir or Path(f"est-client-{args.device}"),
        key_type=args.key_type,
        timeout=args.timeout,
    )
    print(
        f"EST Complete Workflow Test: {args.server}:{args.port} user {args.user}, "
        f"device {args.device}",
        flush=True,
    )
    results = run_workflow(options, lambda result: print(result.line, flush=True))
    failed = [result for result in results if not result.ok]
    print(f"{len(results) - len(failed)}/{len(results)} steps succeeded")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
