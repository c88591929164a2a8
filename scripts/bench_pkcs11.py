#!/usr/bin/env python3
"""Enrollments per second with the CA key in SoftHSM2 against a file key, in one run.

Usage, from the repository root (needs softhsm2 and python-pkcs11, the `pkcs11` extra):

    python scripts/bench_pkcs11.py [-n 200] [--rounds 3] [--key-type rsa-3072 --key-type ec-p256]

For each CA key type it starts two servers (the product's, in this process, on 127.0.0.1): one
with the CA key in a PEM file, one with it on a fresh SoftHSM2 token. Each round then sends `n`
HTTP Basic /simpleenroll requests over TLS to each in turn (one connection per request, as EST
clients do), and times `CertificateAuthority.issue` alone for `n` CSRs, so the token's share of
an enrollment shows. Rounds alternate file and token so that both see the same machine load.
CSRs are made before the clock starts. It prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT, ROOT / "scripts"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

from est_harness import (  # noqa: E402
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
)
from python_est.profile import IssuanceProfile  # noqa: E402

MODULES = (
    Path("/usr/lib/softhsm/libsofthsm2.so"),
    Path("/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so"),
    Path("/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so"),
)
PIN = "bench-pin-4711"
PASSWORD = "bench password"


@contextmanager
def softhsm(work: Path) -> Iterator[tuple[Path, str]]:
    """A fresh SoftHSM2 token under `work`: (module, token label)."""
    util = shutil.which("softhsm2-util")
    module = next((path for path in MODULES if path.is_file()), None)
    if util is None or module is None:
        raise SystemExit("bench_pkcs11: install softhsm2 (scripts/install-system-deps)")
    (work / "tokens").mkdir()
    conf = work / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {work / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    label = "bench"
    subprocess.run(
        [util, "--init-token", "--free", "--label", label, "--pin", PIN, "--so-pin", PIN],
        check=True,
        capture_output=True,
        timeout=60,
    )
    yield module, label


def start(stack: ExitStack, root: Path, extra: str) -> RunningServer:
    server = stack.enter_context(running_server(root, extra))
    assert server.state.users is not None
    server.state.users.add("bench", PASSWORD)
    return server


def token_server(
    stack: ExitStack, root: Path, module: Path, token: str, key_type: str
) -> RunningServer:
    from python_est.ca.pkcs11 import open_token_key
    from python_est.keys import KeyType

    label = f"ca-{key_type}"
    open_token_key(module, token, label, PIN.encode(), create=KeyType(key_type)).close()
    pin_file = root.parent / f"{label}.pin"
    pin_file.write_text(PIN)
    extra = (
        f"[ca]\nkey_type = {key_type}\npkcs11_module = {module}\npkcs11_token = {token}\n"
        f"pkcs11_key_label = {label}\npkcs11_pin = file:{pin_file}\n"
    )
    server = start(stack, root, extra)
    stack.callback(server.state.ca.close)
    return server


def enrollments_per_second(server: RunningServer, count: int) -> float:
    bodies = [csr_body(make_csr("bench")[0]) for _ in range(count)]  # CN = the user
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic("bench", PASSWORD)}
    requests = [
        build_request("POST", "/.well-known/est/simpleenroll", body, headers, server.port)
        for body in bodies
    ]
    context_file = server.ca_file
    began = time.perf_counter()
    for raw in requests:
        reply = https(server.port, raw, cafile=context_file)
        if reply.status != 200:
            raise SystemExit(f"bench_pkcs11: enrollment failed: {reply.status} {reply.body!r}")
    return count / (time.perf_counter() - began)


def issues_per_second(server: RunningServer, count: int) -> float:
    csrs = [make_csr(f"issue-{i}")[0] for i in range(count)]
    profile = IssuanceProfile(name="bench")
    began = time.perf_counter()
    for csr in csrs:
        server.state.ca.issue(csr, profile)
    return count / (time.perf_counter() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="enrollments per round and backend")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--key-type", action="append", default=[], help="CA key type(s)")
    args = parser.parse_args(argv)
    key_types = args.key_type or ["rsa-3072", "ec-p256"]
    work = Path(tempfile.mkdtemp(prefix="bench-pkcs11-"))
    try:
        with softhsm(work) as (module, token), ExitStack() as stack:
            print(f"{args.n} enrollments x {args.rounds} rounds per backend; medians")
            print(f"{'CA key':10} {'where':8} {'enroll/s':>9} {'issue/s':>9}")
            for key_type in key_types:
                servers = {
                    "file": start(
                        stack, work / f"file-{key_type}", f"[ca]\nkey_type = {key_type}\n"
                    ),
                    "softhsm": token_server(
                        stack, work / f"hsm-{key_type}", module, token, key_type
                    ),
                }
                figures: dict[str, tuple[list[float], list[float]]] = {
                    name: ([], []) for name in servers
                }
                for _ in range(args.rounds):
                    for name, server in servers.items():
                        figures[name][0].append(enrollments_per_second(server, args.n))
                        figures[name][1].append(issues_per_second(server, args.n))
                for name, (enrolls, issues) in figures.items():
                    print(
                        f"{key_type:10} {name:8} {statistics.median(enrolls):9.1f} "
                        f"{statistics.median(issues):9.1f}"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
