#!/usr/bin/env python3
"""EST Complete Workflow Test: cacerts, bootstrap page, SRP enrollment, re-enrollment, csrattrs.

    python scripts/est_client.py SERVER_IP USER PASSWORD DEVICE [--cacert CA.pem]

Prints one numbered line per step ("[n] name: SUCCESS ..." or "[n] name: FAILED: reason") and
exits 1 if any step failed. Without --cacert the CA certificates are fetched unverified and
trusted only with --accept-fingerprint (RFC 7030 §4.1.1). Replaces the older
final_test_client.py; the logic lives in `python_est.client.workflow`.

The older est_client.py took `URL DEVICE USER PASSWORD` (https://host:port first). That order
is recognised by its URL, said so on stderr, and run as the same request; without it the
password would have been taken for the device name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

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


def _older_order(argv: list[str]) -> list[str]:
    """`URL DEVICE USER PASSWORD [...]` of the older script as `HOST USER PASSWORD DEVICE
    --port PORT [...]`; any other argument list unchanged."""
    if not argv or not argv[0].lower().startswith(("https://", "http://")):
        return argv
    if len(argv) < 4 or argv[1].startswith("-"):
        raise SystemExit(
            "est_client.py: a URL first is the older order URL DEVICE USER PASSWORD, and it "
            "needs all four; the current order is SERVER USER PASSWORD DEVICE"
        )
    url = urlsplit(argv[0])
    if url.scheme.lower() != "https" or not url.hostname:
        raise SystemExit(f"est_client.py: {argv[0]} is not an https:// URL of an EST server")
    device, user, password, rest = argv[1], argv[2], argv[3], argv[4:]
    print(
        "est_client.py: recognised the older argument order URL DEVICE USER PASSWORD; the "
        f"current order is SERVER USER PASSWORD DEVICE (running: {url.hostname} {user} ... "
        f"{device})",
        file=sys.stderr,
    )
    port = ["--port", str(url.port)] if url.port else []
    return [url.hostname, user, password, device, *port, *rest]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(_older_order(list(sys.argv[1:] if argv is None else argv)))
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
