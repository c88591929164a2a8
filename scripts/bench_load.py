"""The benchmark's load generator: EST requests from OpenSSL-based clients, one TLS connection each.

Certificate, Basic and anonymous requests use Python's `ssl` (OpenSSL); TLS-SRP requests use
curl (libcurl + OpenSSL), which runs a batch of URLs per process, reconnecting for each since
the server closes after every response (`--no-sessionid` unless resuming). Each generator
process runs one `Job` in a closed loop and reports its latencies, errors by kind and its own
CPU time (curl's included). Used by `scripts/bench.py`.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import socket
import ssl
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path

PATHS = {
    "handshake": "",  # a TLS handshake and nothing else
    "cacerts": "/.well-known/est/cacerts",
    "cacerts-srp": "/.well-known/est/cacerts",
    "enroll-basic": "/.well-known/est/simpleenroll",
    "enroll-cert": "/.well-known/est/simpleenroll",
    "enroll-srp": "/.well-known/est/simpleenroll",
    "reenroll": "/.well-known/est/simplereenroll",
    "serverkeygen": "/.well-known/est/serverkeygen",
}
SRP_SCENARIOS = frozenset({"enroll-srp", "cacerts-srp"})
CERT_SCENARIOS = frozenset({"enroll-cert", "reenroll"})
BASIC_SCENARIOS = frozenset({"enroll-basic", "serverkeygen"})
SRP_BATCH = 20  # URLs per curl run


@dataclasses.dataclass(frozen=True)
class Job:
    """What one generator process does between `start` and `end` (time.monotonic values)."""

    scenario: str
    host: str
    port: int
    resume: bool
    start: float
    end: float
    ca_file: str
    user: str
    password: str
    cert_file: str
    key_file: str
    bodies: tuple[bytes, ...]  # base64 CSRs, used in turn; empty for GET


@dataclasses.dataclass
class Result:
    latencies: list[float] = dataclasses.field(default_factory=list)  # seconds, successes
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    cpu: float = 0.0  # seconds of this process and its children inside the window


def _cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _request(job: Job, body: bytes | None) -> bytes:
    lines = [
        f"{'POST' if body is not None else 'GET'} {PATHS[job.scenario]} HTTP/1.1",
        f"Host: {job.host}:{job.port}",
        "Connection: close",
    ]
    if job.scenario in BASIC_SCENARIOS:
        token = base64.b64encode(f"{job.user}:{job.password}".encode()).decode()
        lines.append(f"Authorization: Basic {token}")
    if body is not None:
        lines += ["Content-Type: application/pkcs10", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def run(job: Job) -> Result:
    """Run `job`; requests started before `job.start` warm up and are not counted."""
    if job.scenario in SRP_SCENARIOS:
        return _run_curl(job)
    return _run_ssl(job)


def _run_ssl(job: Job) -> Result:
    ctx = ssl.create_default_context(cafile=job.ca_file)
    if job.scenario in CERT_SCENARIOS:
        ctx.load_cert_chain(job.cert_file, job.key_file)
    session: ssl.SSLSession | None = None
    result = Result()
    requests = [_request(job, body) for body in job.bodies] or [_request(job, None)]
    if job.scenario == "handshake":
        requests = [b""]
    count = 0
    cpu_start: float | None = None
    while (now := time.monotonic()) < job.end:
        if now >= job.start and cpu_start is None:
            cpu_start = _cpu()
        request = requests[count % len(requests)]
        count += 1
        began = time.perf_counter()
        error = None
        try:
            with socket.create_connection((job.host, job.port), timeout=30) as raw:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                with ctx.wrap_socket(raw, server_hostname=job.host, session=session) as tls:
                    reply = bytearray(b"HTTP/1.1 200 handshake only")
                    if request:
                        tls.sendall(request)
                        reply.clear()
                        while chunk := tls.recv(65536):
                            reply += chunk
                    if job.resume and session is None:
                        session = tls.session
            status = reply[9:12].decode("ascii", "replace")
            if not status.startswith("2"):
                error = f"http {status}"
        except ssl.SSLError as exc:
            error = f"tls {exc.reason or type(exc).__name__}"
        except TimeoutError:
            error = "timeout"
        except OSError as exc:
            error = f"socket {type(exc).__name__}"
        if now < job.start:
            continue
        if error is None:
            result.latencies.append(time.perf_counter() - began)
        else:
            result.errors[error] += 1
    if cpu_start is not None:
        result.cpu = _cpu() - cpu_start
    return result


def _run_curl(job: Job) -> Result:
    result = Result()
    with tempfile.TemporaryDirectory() as tmp:
        bodies = []
        for i, body in enumerate(job.bodies):
            path = Path(tmp) / f"csr{i}"
            path.write_bytes(body)
            bodies.append(path)
        url = f"https://{job.host}:{job.port}{PATHS[job.scenario]}"
        base = ["curl", "-sS", "-k", "--max-time", "60", "-w", "%{http_code} %{time_total}\\n"]
        base += ["--tlsauthtype", "SRP", "--tlsuser", job.user, "--tlspassword", job.password]
        base += ["--ciphers", "SRP-AES-256-CBC-SHA"]
        if not job.resume:
            base.append("--no-sessionid")
        batch = 0
        cpu_start: float | None = None
        while (now := time.monotonic()) < job.end:
            if now >= job.start and cpu_start is None:
                cpu_start = _cpu()
            args = list(base)
            if bodies:
                args += ["-H", "Content-Type: application/pkcs10"]
                args += ["--data-binary", f"@{bodies[batch % len(bodies)]}"]
            args += ["-o", os.devnull] * SRP_BATCH + [url] * SRP_BATCH
            batch += 1
            done = subprocess.run(args, capture_output=True, text=True, timeout=120)
            if now < job.start:
                continue
            for line in done.stdout.splitlines():
                code, _, seconds = line.partition(" ")
                if code.startswith("2"):
                    result.latencies.append(float(seconds))
                else:
                    result.errors[f"http {code}" if code != "000" else "curl failed"] += 1
            if done.returncode != 0 and not done.stdout:
                result.errors[f"curl exit {done.returncode}"] += SRP_BATCH
        if cpu_start is not None:
            result.cpu = _cpu() - cpu_start
    return result
