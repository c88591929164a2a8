"""Manual approval (RFC 7030 §4.2.3) over real TLS, decided with `python-est requests`."""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_harness import Reply, RunningServer, basic, build_request, https, running_server
from python_est.cli import main
from python_est.ledger import PendingStatus

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password"
HELD = "[label:held]\napproval = manual\npassword_subjects = any\n"
PATH = "/.well-known/est/held/simpleenroll"


def with_user(running: RunningServer) -> RunningServer:
    assert running.state.users is not None
    if USER not in running.state.users.list_users():
        running.state.users.add(USER, PASSWORD)
    return running


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return with_user(start_est_server(HELD))


def csr_body(key: ec.EllipticCurvePrivateKey, note: str) -> bytes:
    # `note` varies the CSR bytes between retries, as a new challengePassword would.
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sensor-12")]))
        .add_attribute(x509.ObjectIdentifier("1.2.840.113549.1.9.7"), note.encode())
        .sign(key, hashes.SHA256())
    )
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER))


def enroll(server: RunningServer, key: ec.EllipticCurvePrivateKey, note: str = "a") -> Reply:
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request("POST", PATH, csr_body(key, note), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file)


def held(reply: Reply) -> str:
    assert reply.status == 202, reply.body
    assert reply.headers["Retry-After"].isdigit() and int(reply.headers["Retry-After"]) > 0
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = reply.body.decode()
    assert "awaits approval" in text
    return text.split()[1]


def cli(root: Path, *args: str) -> int:
    """Run `python-est requests ...` in-process; `main()` routes python_est logging to stderr,
    which is put back at once, while the server thread keeps logging."""
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return main(["-c", str(root / "est.cfg"), "requests", *args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def test_held_then_approved_with_the_cli(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request_id = held(enroll(server, key, "first"))
    assert held(enroll(server, key, "second")) == request_id  # new connection, new CSR bytes
    capsys.readouterr()
    assert cli(server.root, "list") == 0
    listing = capsys.readouterr().out
    assert request_id in listing and "CN=sensor-12" in listing and f"{USER} (basic)" in listing

    assert cli(server.root, "approve", request_id) == 0
    first = enroll(server, key, "third")
    assert first.status == 200, first.body
    [cert] = first.certificates()
    assert cert.public_key() == key.public_key()
    # An idempotent retry after issuance gets the same certificate, not a second one.
    [again] = enroll(server, key, "fourth").certificates()
    assert again == cert
    assert server.state.ledger.count() == 1


def test_rejected_with_the_cli_is_403_with_the_reason(server: RunningServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request_id = held(enroll(server, key))
    assert cli(server.root, "reject", request_id, "--reason", "device not in inventory") == 0
    reply = enroll(server, key)
    assert reply.status == 403
    assert b"device not in inventory" in reply.body
    assert server.state.ledger.count() == 0


def test_pending_requests_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "est"
    key = ec.generate_private_key(ec.SECP256R1())
    with running_server(root, HELD) as first:
        request_id = held(enroll(with_user(first), key))
    # Decided while the server is down; the decision and the request are in the ledger.
    assert cli(root, "approve", request_id) == 0
    with running_server(root, HELD) as second:
        reply = enroll(with_user(second), key, "after restart")
        assert reply.status == 200, reply.body
        [cert] = reply.certificates()
        pending = second.state.ledger.get_pending(request_id)
        assert pending is not None and pending.serial == cert.serial_number
    with running_server(root, HELD) as third:
        [issued] = third.state.ledger.list_pending(PendingStatus.ISSUED)
        assert issued.id == request_id
        # The certificate issued before the restart is still what the retry gets.
        assert enroll(with_user(third), key, "once more").certificates() == [cert]


def test_concurrent_retries_after_approval_issue_once(server: RunningServer) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    request_id = held(enroll(server, key))
    server.state.ledger.decide_pending(request_id, approve=True)
    barrier = threading.Barrier(4)
    replies: list[Reply] = []

    def retry(index: int) -> None:
        barrier.wait()
        replies.append(enroll(server, key, f"retry {index}"))

    threads = [threading.Thread(target=retry, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [reply.status for reply in replies] == [200] * 4
    assert len({reply.certificates()[0].serial_number for reply in replies}) == 1
    assert server.state.ledger.count() == 1
