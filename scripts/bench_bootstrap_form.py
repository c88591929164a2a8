#!/usr/bin/env python3
"""CPU cost of the most expensive bootstrap-page forms an unauthenticated client can send.

Prints figures; asserts nothing. In process, the server's own request handler (`build_app`:
ops routes, bootstrap page, EST service) gets each hostile form and the CPU time of the call
is measured (`time.process_time`, median of N runs). The forms are 32 KB (the page's CSR cap)
of repeated `-----BEGIN CERTIFICATE REQUEST-----` markers with no END marker, pasted or
uploaded, with no credentials, an unknown user, or a wrong password. When the page hands out a
form token (issue 13), the script fetches one first, as an attacker would, so the refusal
cannot come from a missing token.

    python scripts/bench_bootstrap_form.py [--runs 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from python_est.app import build_app
from python_est.config import load_config
from python_est.messages import HttpRequest
from python_est.policy import PeerIdentity, TlsInfo
from python_est.state import open_state

BOUNDARY = "----WebKitFormBoundaryBench"
CSR_CAP = 32 * 1024
MARKERS = {
    "BEGIN": "-----BEGIN CERTIFICATE REQUEST-----",
    "BEGIN NEW": "-----BEGIN NEW CERTIFICATE REQUEST-----\n",
}
PEER = PeerIdentity("192.0.2.9:4000", TlsInfo("TLS1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"))


def multipart(fields: dict[str, str], upload: bytes | None) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    ]
    if upload is not None:
        parts.append(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="csr_file"; '
            'filename="x.csr"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + upload
            + b"\r\n"
        )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def form_token(handler: object, path: str) -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    """The hidden token field and cookie of a freshly fetched form, if the page has them."""
    response = handler(HttpRequest("GET", path, (("host", "est.example"),)), PEER)  # type: ignore[operator]
    match = re.search(rb'name="form_token" value="([^"]+)"', response.body)
    if match is None:
        return {}, ()
    cookie = next(v for k, v in response.headers if k.lower() == "set-cookie").split(";")[0]
    return {"form_token": match.group(1).decode()}, (("cookie", cookie),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "est.cfg"
        cfg.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
        config = load_config(cfg)
        state = open_state(config, create=True)
        assert state.users is not None
        state.users.add("alice", "the right password")
        _, handler = build_app(config, state)
        path = config.bootstrap.path
        credentials = {
            "no credentials": {},
            "unknown user": {"user": "mallory", "password": "guess"},
            "wrong password": {"user": "alice", "password": "guess"},
        }
        print(f"CPU seconds per form (median of {args.runs}), 32 KB of repeated markers:")
        for marker_name, marker in MARKERS.items():
            text = (marker * (CSR_CAP // len(marker) + 1))[:CSR_CAP]
            for how in ("pasted", "uploaded"):
                for who, fields in credentials.items():
                    token, cookie = form_token(handler, path)
                    values = {**fields, **token, "mode": "csr"}
                    upload = None
                    if how == "pasted":
                        values["csr"] = text
                    else:
                        upload = text.encode()
                    body = multipart(values, upload)
                    headers = (
                        ("host", "est.example"),
                        ("content-type", f"multipart/form-data; boundary={BOUNDARY}"),
                        *cookie,
                    )
                    request = HttpRequest("POST", path, headers, body)
                    costs, status = [], 0
                    for _ in range(args.runs):
                        started = time.process_time()
                        status = handler(request, PEER).status
                        costs.append(time.process_time() - started)
                    print(
                        f"  {marker_name:9} {how:8} {who:15} -> {status}: "
                        f"{statistics.median(costs):.4f} s (max {max(costs):.4f})"
                    )
        state.ledger.close()


if __name__ == "__main__":
    main()
