#!/usr/bin/env python3
"""CPU per step of one /simpleenroll, in-process (no TLS, no sockets): where enrollment time goes.

The state is made as `init` makes it (`open_state` on a fresh directory: CA, SQLite ledger, user
store, lockout counters) for each CA key type, the service is built by `build_app`, and one
Basic-auth enrollment of a P-256 CSR for CN=bench (`password_subjects = own`) is taken apart
into the steps the service runs, each timed in process CPU time (median of N, in µs):

- HTTP request parse; authentication (the Basic password, lockout counters);
- CSR decode; CSR checks (linking/challengePassword, name caps, fixed subject);
- authorization (who may have these names); CA issue (its CSR signature check, shown on its own
  line too, and the signature of the certificate); ledger record (commit);
- response encoding (certs-only CMS, base64, HTTP); audit line; access line.

"whole request" then runs the real path end to end (routing table → EstService → serialize →
access line), so the steps can be checked against it, and "calibration" times a fixed piece of
Python in the same child: when two columns differ in it, the machine drifted. Logging goes
through the product's plain formatter to /dev/null. Prints figures; asserts nothing.

`--against TREE` runs the same measurement on the python-est source tree TREE (for example a
`git archive` of the commit before a change) in alternating rounds (ABBA), and prints both side
by side with the ratio: before/after figures from one run. Each figure is the lowest median over
the rounds, since other load on the machine only ever adds time.

    python scripts/bench_enroll_steps.py [-n 200] [--rounds 6] [--linked] [--against TREE]
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# `--against` runs this file with the other tree first on the path.
sys.path.insert(0, os.environ.get("BENCH_ENROLL_TREE", str(ROOT)))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import AttributeOID, NameOID  # noqa: E402

USER, PASSWORD = "bench", "bench-password-1"
TLS_UNIQUE = bytes(range(12))
CA_TYPES = ("rsa-3072", "ec-p256")
STEPS = (
    "http parse",
    "authentication",
    "csr decode",
    "csr checks",
    "authorization",
    "ca issue",
    "  of which csr signature",
    "ledger record",
    "response encoding",
    "audit line",
    "access line",
    "sum of steps",
    "whole request",
    "calibration",
)


def request_bytes(linked: bool) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, USER)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    if linked:
        # RFC 7030 §3.5 linking, as libest's estclient does it: base64(tls-unique).
        builder = builder.add_attribute(
            AttributeOID.CHALLENGE_PASSWORD, base64.b64encode(TLS_UNIQUE)
        )
    csr = builder.sign(key, hashes.SHA256())
    body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    head = (
        "POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: est.example\r\n"
        f"Authorization: Basic {token}\r\nContent-Type: application/pkcs10\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def measure(ca_type: str, n: int, workdir: Path, linked: bool) -> dict[str, float]:
    """Median µs of CPU per step for `n` enrollments under a fresh state with a `ca_type` CA."""
    from python_est import wire
    from python_est.app import build_app
    from python_est.app.access import failure_limiter
    from python_est.audit import audit
    from python_est.ca.rules import verified_csr_key
    from python_est.cli.logs import make_formatter
    from python_est.config import load_config
    from python_est.ledger import IssuedCertificate, serial_hex
    from python_est.policy import (
        PeerIdentity,
        TlsInfo,
        authorize_enrollment,
        check_csr_names,
        check_linking,
        fixed_refusal,
    )
    from python_est.server.http11 import RequestParser, serialize_response
    from python_est.server.outcome import Outcome
    from python_est.service.auth import Authenticator
    from python_est.service.issuance import certs_only_response
    from python_est.service.layout import laid_out
    from python_est.state import open_state

    cfg = workdir / f"{ca_type}.cfg"
    cfg.write_text(
        f"[server]\nstate_dir = {workdir / ca_type}\n[ca]\nkey_type = {ca_type}\n"
        "[auth]\nmax_failures = 1000000\n"
    )
    config = load_config(cfg)
    state = open_state(config)
    assert state.users is not None
    state.users.add(USER, PASSWORD)
    _, table = build_app(config, state)
    handler = logging.StreamHandler(open(os.devnull, "w"))
    handler.setFormatter(make_formatter("plain"))
    root = logging.getLogger("python_est")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False

    label = config.labels[""]
    authenticator = Authenticator(state.users, failure_limiter(config, state), config.auth.realm)
    tls = TlsInfo("TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", TLS_UNIQUE, False, True)
    peer = PeerIdentity("127.0.0.1:40000", tls)
    raw = [request_bytes(linked) for _ in range(16)]
    times: dict[str, list[int]] = {step: [] for step in STEPS}

    def took(step: str, start: int) -> None:
        times[step].append(time.process_time_ns() - start)

    clock = time.process_time_ns
    for i in range(n):
        data = raw[i % len(raw)]
        started = time.monotonic()
        t = clock()
        request = RequestParser().feed(data)
        took("http parse", t)
        assert request is not None
        t = clock()
        auth = authenticator.authenticate(request, peer, label.enroll_auth)
        took("authentication", t)
        t = clock()
        csr = wire.decode_csr(request.body)
        took("csr decode", t)
        t = clock()
        password = wire.csr_challenge_password(csr)
        check_linking(password, peer.tls, required=label.require_pop, is_ra=False)
        check_csr_names(csr, label.profile)
        assert fixed_refusal(csr.subject, label.profile) is None
        took("csr checks", t)
        t = clock()
        names = {USER: state.users.allowed_names(USER)}
        authorize_enrollment(
            csr,
            auth,
            password_subjects=label.password_subjects,
            allowed_names=names,
            profile=label.profile,
        )
        took("authorization", t)
        t = clock()
        verified_csr_key(csr)
        took("  of which csr signature", t)
        t = clock()
        cert = state.ca.issue(csr, label.profile)
        took("ca issue", t)
        t = clock()
        entry = IssuedCertificate.from_certificate(
            cert, requester=USER, auth_method="basic", label="", operation="simpleenroll"
        )
        state.ledger.record(entry)
        took("ledger record", t)
        t = clock()
        assert serialize_response(laid_out(certs_only_response(cert), False))
        took("response encoding", t)
        t = clock()
        serial = serial_hex(cert.serial_number)
        audit(
            "enroll",
            "issued",
            "serial=%s subject=%r requester=%r auth=%s label=%r operation=%s",
            serial,
            entry.subject,
            USER,
            "basic",
            "",
            "simpleenroll",
            serial=serial,
            subject=entry.subject,
            requester=USER,
            auth="basic",
            label="",
        )
        took("audit line", t)
        t = clock()
        outcome = Outcome(peer.address)
        outcome.peer, outcome.request, outcome.status = peer, "POST /x", 200
        outcome.log(started)
        took("access line", t)

    for i in range(n):
        data = raw[i % len(raw)]
        t = clock()
        started = time.monotonic()
        request = RequestParser().feed(data)
        assert request is not None
        outcome = Outcome(peer.address)
        outcome.peer, outcome.request = peer, f"{request.method} {request.target}"
        response = table.resolve(request)(request, peer)
        outcome.status = response.status
        assert response.status == 200 and serialize_response(response)
        outcome.log(started)
        took("whole request", t)

    for _ in range(n):
        # The machine's speed in this child: a fixed piece of Python, to tell drift from change.
        t = clock()
        sum(i * i for i in range(2000))
        took("calibration", t)

    medians = {step: statistics.median(values) / 1000 for step, values in times.items() if values}
    parts = [s for s in STEPS[: STEPS.index("sum of steps")] if not s.startswith(" ")]
    medians["sum of steps"] = sum(medians[s] for s in parts)
    return medians


def run_tree(tree: Path | None, n: int, linked: bool) -> dict[str, dict[str, float]]:
    """One round on `tree` (None: this tree), in a child process."""
    env = dict(os.environ)
    if tree is not None:
        env["BENCH_ENROLL_TREE"] = str(tree)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "-n", str(n), *(["--linked"] if linked else [])],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, dict[str, float]] = json.loads(out)
    return result


def best(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per figure, the lowest median over rounds (other load only ever adds time)."""
    return {
        ca: {step: min(r[ca][step] for r in rounds) for step in rounds[0][ca]} for ca in rounds[0]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200, help="enrollments per step and round")
    parser.add_argument("--rounds", type=int, default=6, help="best of this many rounds")
    parser.add_argument("--against", type=Path, help="a python-est tree to compare with")
    parser.add_argument(
        "--linked", action="store_true", help="CSRs carry a challengePassword (RFC 7030 §3.5)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        with tempfile.TemporaryDirectory(prefix="bench-enroll-") as tmp:
            print(json.dumps({ca: measure(ca, args.n, Path(tmp), args.linked) for ca in CA_TYPES}))
        return
    print(
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; n={args.n}, "
        f"best of {args.rounds} rounds; CSRs {'with' if args.linked else 'without'} "
        "challengePassword; CPU µs per enrollment (median)"
    )
    ours, theirs = [], []
    for index in range(args.rounds):
        # ABBA order, so that drift over the run weighs on both trees alike.
        theirs_first = index % 2 == 0
        if args.against is not None and theirs_first:
            theirs.append(run_tree(args.against, args.n, args.linked))
        ours.append(run_tree(None, args.n, args.linked))
        if args.against is not None and not theirs_first:
            theirs.append(run_tree(args.against, args.n, args.linked))
    now = best(ours)
    before = best(theirs) if theirs else None
    for ca in CA_TYPES:
        print(f"\nCA {ca}")
        header = f"{'step':<26}" + (
            f"{'against':>10}{'this tree':>10}{'ratio':>7}" if before else f"{'µs':>10}"
        )
        print(header)
        for step in STEPS:
            if step not in now[ca]:
                continue
            if before is None:
                print(f"{step:<26}{now[ca][step]:>10.0f}")
            else:
                old = before[ca].get(step)
                ratio = f"{now[ca][step] / old:>7.2f}" if old else f"{'-':>7}"
                shown = f"{old:>10.0f}" if old is not None else f"{'-':>10}"
                print(f"{step:<26}{shown}{now[ca][step]:>10.0f}{ratio}")
    print(f"\nload average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
