"""Scale-out: two `python main.py` instances on one PostgreSQL database behind HAProxy.

The fleet: a throwaway PostgreSQL cluster, `python-est db upgrade`, instances A and B as
subprocesses sharing the database, each with its own copy of the state directory (CA and TLS
server credentials, as on two hosts), and HAProxy in TCP mode passing TLS through to both, each
connection prefixed with a PROXY v2 header (`send-proxy-v2`; the instances trust HAProxy's source
address only, so tests connecting to an instance directly stay direct clients). Then:

- a user added through A (the CLI with A's config) logs in through B, by TLS-SRP and Basic;
- a manual-approval request held by A, approved with B's CLI, is picked up by the client
  retrying through A;
- a TLS session made on A resumes on B (session tickets sealed with keys from the database);
- through HAProxy the instances see each client's own address (log line, and failed logins lock
  that address on every instance, not every client behind the balancer);
- 200 concurrent enrollments (Basic, TLS-SRP, certificate) through HAProxy while B is killed
  halfway: every certificate a client received is in the ledger exactly once, all serials are
  unique, and every client that saw an error succeeded on a retry. (This test kills B: it runs
  last.)
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from est_harness import (
    TEST_CFG,
    Reply,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    merge_config,
    parse_reply,
    read_all,
    srp,
    write_credentials,
)
from python_est import wire
from python_est.ca import certificate_pem
from python_est.config import load_config
from python_est.ledger import IssuedCertificate
from tests.pg_support import (
    PROXY_SOURCE,
    HaProxy,
    PgCluster,
    free_port,
    haproxy,
    postgres_cluster,
    wait_for_port,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "fleet password"
USERS = [f"fleet-{n}" for n in range(8)]
CERT_CLIENTS = 24
ENROLLMENTS = 200
THREADS = 20
MAX_ATTEMPTS = 8


@dataclass
class Instance:
    name: str
    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, str(REPO / "main.py"), "-c", str(self.config)],
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def cli(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "main.py"), "-c", str(self.config), *args],
            cwd=REPO,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )


@dataclass
class Fleet:
    cluster: PgCluster
    url: str
    root: Path
    a: Instance
    b: Instance
    proxy: HaProxy
    ca_file: Path
    cert_clients: list[tuple[Path, Path, str]] = field(default_factory=list)


def _config(state_dir: Path, port: int, url: str) -> str:
    return merge_config(
        TEST_CFG,
        f"""
[server]
port = {port}
state_dir = {state_dir}
handshake_timeout = 10
request_timeout = 10
proxy_protocol = yes
trusted_proxies = {PROXY_SOURCE}
[ledger]
url = {url}
[label:manual]
approval = manual
""",
    )


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fleet")
    with postgres_cluster() as cluster:
        url = cluster.create_database()
        instances = []
        for name in ("a", "b"):
            port = free_port()
            cfg = root / f"{name}.cfg"
            cfg.write_text(_config(root / f"state-{name}", port, url))
            instances.append(Instance(name, cfg, port, root / f"{name}.log"))
        a, b = instances
        upgraded = a.cli("db", "upgrade")
        assert upgraded.returncode == 0, upgraded.stderr
        created = a.cli("init")
        assert created.returncode == 0, created.stderr
        # Another host gets a copy of the CA and TLS credentials; everything else it shares
        # through the database (session-ticket keys included).
        shutil.copytree(root / "state-a", root / "state-b")
        from python_est.state import open_state

        state = open_state(load_config(a.config), create=False)
        try:
            assert state.users is not None
            for user in USERS:
                state.users.add(user, PASSWORD)
            ca_file = root / "trust.pem"
            ca_file.write_bytes(certificate_pem(state.ca.root))
            clients = []
            for n in range(CERT_CLIENTS):
                cn = f"cert-client-{n}"
                cert, key = state.ca.issue_client_certificate(common_name=cn)
                # Recorded as issued under the default label, so it may reenroll there.
                state.ledger.record(
                    IssuedCertificate.from_certificate(
                        cert, requester="test", auth_method="admin", label="", operation="init"
                    )
                )
                cert_path, key_path = write_credentials(root, cn, cert, key)
                clients.append((cert_path, key_path, cn))
        finally:
            state.ledger.close()
        try:
            a.start()
            b.start()
            with haproxy(root, [a.port, b.port], proxy_protocol=True) as proxy:
                yield Fleet(cluster, url, root, a, b, proxy, ca_file, clients)
        finally:
            a.stop()
            b.stop()


def _enroll_request(
    port: int, cn: str, path: str = "/.well-known/est/simpleenroll", **headers: str
) -> tuple[bytes, x509.CertificateSigningRequest, ec.EllipticCurvePrivateKey]:
    csr, key = make_csr(cn)
    request = build_request(
        "POST", path, csr_body(csr), {"Content-Type": "application/pkcs10", **headers}, port
    )
    return request, csr, key


def _only_cert(reply: Reply) -> x509.Certificate:
    assert reply.status == 200, (reply.status, reply.body[:200])
    (cert,) = wire.decode_certs_only(reply.body)
    return cert


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(Encoding.PEM).decode("ascii")


def _ledger_pems(fleet: Fleet) -> dict[int, list[str]]:
    import psycopg

    with psycopg.connect(fleet.url) as conn:
        rows = conn.execute("SELECT serial, pem FROM certificates").fetchall()
    found: dict[int, list[str]] = {}
    for serial, pem in rows:
        found.setdefault(int(serial, 16), []).append(pem)
    return found


def test_a_user_added_through_a_logs_in_through_b(fleet: Fleet) -> None:
    added = fleet.a.cli("user", "add", "carol", "--password-stdin", stdin="carol's secret\n")
    assert added.returncode == 0, added.stderr
    request, _, _ = _enroll_request(fleet.b.port, "carol")
    cert = _only_cert(srp(fleet.b.port, "carol", "carol's secret", request))
    assert cert.subject.rfc4514_string() == "CN=carol"
    request, _, _ = _enroll_request(
        fleet.b.port, "carol", Authorization=basic("carol", "carol's secret")
    )
    _only_cert(https(fleet.b.port, request, cafile=fleet.ca_file))
    request, _, _ = _enroll_request(fleet.b.port, "carol", Authorization=basic("carol", "wrong"))
    assert https(fleet.b.port, request, cafile=fleet.ca_file).status == 401


def test_a_request_approved_on_b_is_picked_up_through_a(fleet: Fleet) -> None:
    user = USERS[0]
    path = "/.well-known/est/manual/simpleenroll"
    request, _, key = _enroll_request(fleet.a.port, user, path, Authorization=basic(user, PASSWORD))
    held = https(fleet.a.port, request, cafile=fleet.ca_file)
    assert held.status == 202 and int(held.headers["Retry-After"]) > 0
    match = re.search(rb"request ([0-9a-f]{32})", held.body)
    assert match is not None, held.body
    request_id = match.group(1).decode()
    approved = fleet.b.cli("requests", "approve", request_id, "--reason", "scale-out test")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    cert = _only_cert(https(fleet.a.port, request, cafile=fleet.ca_file))
    assert cert.public_key() == key.public_key()
    again = _only_cert(https(fleet.a.port, request, cafile=fleet.ca_file))
    assert again.serial_number == cert.serial_number  # a retry gets the same certificate
    assert _ledger_pems(fleet)[cert.serial_number] == [_pem(cert)]


def test_a_tls_session_made_on_a_resumes_on_b(fleet: Fleet) -> None:
    context = ssl.create_default_context(cafile=str(fleet.ca_file))
    context.maximum_version = ssl.TLSVersion.TLSv1_2

    def cacerts(port: int, session: ssl.SSLSession | None) -> tuple[ssl.SSLSession, bool]:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls:
                tls.sendall(build_request("GET", "/.well-known/est/cacerts", port=port))
                assert parse_reply(read_all(tls)).status == 200
                assert tls.session is not None
                return tls.session, bool(tls.session_reused)

    session, reused = cacerts(fleet.a.port, None)
    assert not reused and session.has_ticket
    _, reused = cacerts(fleet.b.port, session)
    assert reused


def _https_from(source: str, port: int, request: bytes, cafile: Path) -> Reply:
    """`https`, from the loopback address `source` (a distinct client address)."""
    context = ssl.create_default_context(cafile=str(cafile))
    with socket.create_connection(("127.0.0.1", port), 10, source_address=(source, 0)) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            return parse_reply(read_all(tls))


def _logs(fleet: Fleet) -> list[str]:
    return [(fleet.root / f"{name}.log").read_text(errors="replace") for name in ("a", "b")]


def test_instances_see_the_client_address_through_haproxy(fleet: Fleet) -> None:
    port = fleet.proxy.port
    user = USERS[1]
    guesser, other = "127.0.0.3", "127.0.0.4"
    for _ in range(4):  # round robin: some land on each instance
        request = build_request("GET", "/.well-known/est/cacerts", port=port)
        assert _https_from(guesser, port, request, fleet.ca_file).status == 200
    line = f"{guesser} TLS"  # an instance logs a connection just after its response
    deadline = time.monotonic() + 10
    while not all(line in text and f"proxy={PROXY_SOURCE}" in text for text in _logs(fleet)):
        assert time.monotonic() < deadline, "an instance logged HAProxy's address, not the client's"
        time.sleep(0.1)
    # Five wrong passwords (the default [auth] max_failures) for one user from one client: that
    # user is locked from that address on both instances (shared counters); the same user from
    # the neighbouring address is not.
    for n in range(5):
        request, _, _ = _enroll_request(port, user, Authorization=basic(user, f"guess-{n}"))
        assert _https_from(guesser, port, request, fleet.ca_file).status == 401
    for _ in range(2):
        request, _, _ = _enroll_request(port, user, Authorization=basic(user, PASSWORD))
        assert _https_from(guesser, port, request, fleet.ca_file).status == 429
    request, _, _ = _enroll_request(port, user, Authorization=basic(user, PASSWORD))
    _only_cert(_https_from(other, port, request, fleet.ca_file))


def test_200_concurrent_enrollments_survive_killing_an_instance(fleet: Fleet) -> None:
    port = fleet.proxy.port
    done = threading.Semaphore(0)
    lock = threading.Lock()
    received: list[tuple[int, x509.Certificate]] = []
    errors: dict[int, list[str]] = {}

    def attempt(job: int) -> Reply:
        kind = job % 3
        if kind == 0:
            user = USERS[job % len(USERS)]
            request, _, _ = _enroll_request(port, user, Authorization=basic(user, PASSWORD))
            return https(port, request, cafile=fleet.ca_file)
        if kind == 1:
            user = USERS[job % len(USERS)]
            request, _, _ = _enroll_request(port, user)
            return srp(port, user, PASSWORD, request)
        cert_path, key_path, cn = fleet.cert_clients[job % len(fleet.cert_clients)]
        request, _, _ = _enroll_request(port, cn, "/.well-known/est/simplereenroll")
        return https(port, request, cafile=fleet.ca_file, client_cert=(cert_path, key_path))

    def client(job: int) -> bool:
        try:
            for _ in range(MAX_ATTEMPTS):
                try:
                    reply = attempt(job)
                except Exception as exc:  # a reset, a refused or half-finished handshake
                    problem = f"{exc.__class__.__name__}: {exc}"
                else:
                    if reply.status == 200:
                        (cert,) = wire.decode_certs_only(reply.body)
                        with lock:
                            received.append((job, cert))
                        return True
                    problem = f"HTTP {reply.status}: {reply.body[:120]!r}"
                with lock:
                    errors.setdefault(job, []).append(problem)
                time.sleep(0.3)
            return False
        finally:
            done.release()

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        results = [pool.submit(client, job) for job in range(ENROLLMENTS)]
        for _ in range(ENROLLMENTS // 2):
            done.acquire()
        assert fleet.b.process is not None
        fleet.b.process.kill()  # SIGKILL halfway: no goodbye to the clients it is serving
        fleet.b.process.wait(timeout=10)
        succeeded = [future.result(timeout=120) for future in results]
    elapsed = time.monotonic() - started

    failed = [job for job, ok in enumerate(succeeded) if not ok]
    assert failed == [], {job: errors[job] for job in failed[:5]}
    assert len(received) == ENROLLMENTS
    serials = [cert.serial_number for _, cert in received]
    assert len(set(serials)) == ENROLLMENTS  # all unique
    ledger = _ledger_pems(fleet)
    for _, cert in received:
        pem = _pem(cert)
        assert ledger.get(cert.serial_number) == [pem]  # recorded, exactly once
    # Killing B mid-flight broke some of its connections; those clients succeeded on a retry.
    assert errors, "B was killed while idle: no client saw an error"
    issued_by = {
        name: (fleet.root / f"{name}.log").read_text(errors="replace").count("issued serial=")
        for name in ("a", "b")
    }
    assert issued_by["a"] > 0 and issued_by["b"] > 0, issued_by
    print(
        f"\n{ENROLLMENTS} enrollments in {elapsed:.1f} s through HAProxy; "
        f"{len(errors)} clients retried; issued by A/B: {issued_by}; ledger {len(ledger)}"
    )
