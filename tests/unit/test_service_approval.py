"""Manual approval (RFC 7030 §4.2.3) through EstService and `python-est requests`.

A real CA, SQLite ledger and user store from a state directory; no sockets, no mocks.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est import oids, wire
from python_est.cli import main
from python_est.config import AuthMethod, Config, LabelConfig, load_config
from python_est.errors import Forbidden, InvalidCsr
from python_est.ledger import IssuedCertificate, PendingStatus, SqliteLedger
from python_est.messages import HttpRequest, HttpResponse, Operation
from python_est.policy import Authentication, ClientCertificate, PeerIdentity, TlsInfo
from python_est.profile import IssuanceProfile
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService
from python_est.service.approval import CLAIM_LEASE_S, ApprovalGate, needs_approval
from python_est.service.issuance import Issuer, certs_only_response
from python_est.state import State, open_state

EST = "/.well-known/est"
TLS12 = TlsInfo(
    "TLS1.2",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    tls_unique=bytes(12),
    extended_master_secret=True,
)
ANON = PeerIdentity("192.0.2.10:40000", TLS12)
RETRY_AFTER = 30
HELD = LabelConfig(name="held", approval="manual", password_subjects="any")
LABELS = {"": LabelConfig(), "held": HELD}


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """`main()` routes python_est logging to stderr; put it back for the tests that follow."""
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    return path


@pytest.fixture
def config(cfg: Path) -> Config:
    return load_config(cfg)


@pytest.fixture
def state(config: Config) -> State:
    state = open_state(config, create=True)
    assert state.users is not None
    state.users.add("alice", "alice-pw")
    state.users.add("bob", "bob-pw")
    return state


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_service(state: State, clock: Clock, ledger: SqliteLedger | None = None) -> EstService:
    return EstService(
        labels=LABELS,
        ca=state.ca,
        ledger=ledger or state.ledger,
        users=state.users,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
        clock=clock,
        pending_retry_after=RETRY_AFTER,
    )


@pytest.fixture
def service(state: State, clock: Clock) -> EstService:
    return make_service(state, clock)


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def csr_for(
    key: ec.EllipticCurvePrivateKey,
    common_name: str = "device-1",
    challenge: str | None = None,
    dns: tuple[str, ...] = (),
) -> x509.CertificateSigningRequest:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    )
    if challenge is not None:
        builder = builder.add_attribute(oids.CHALLENGE_PASSWORD, challenge.encode())
    if dns:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in dns]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def request(
    csr: x509.CertificateSigningRequest,
    op: str = "held/simpleenroll",
    user: str = "alice",
    *,
    body: bytes | None = None,
) -> HttpRequest:
    token = base64.b64encode(f"{user}:{user}-pw".encode()).decode()
    if body is None:
        body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    headers = (("content-type", "application/pkcs10"), ("authorization", f"Basic {token}"))
    return HttpRequest("POST", f"{EST}/{op}", headers, body)


def certificate(response: HttpResponse) -> x509.Certificate:
    assert response.status == 200
    [cert] = wire.decode_certs_only(response.body)
    return cert


def held_id(response: HttpResponse) -> str:
    assert response.status == 202
    assert response.header("Retry-After") == str(RETRY_AFTER)
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    text = response.body.decode()
    assert "awaits approval" in text and text.count("\n") == 1
    return text.split()[1]


# --- the flow ---


def test_first_request_is_held_with_202_and_retry_after(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    [pending] = state.ledger.list_pending()
    assert pending.id == request_id
    assert pending.status is PendingStatus.PENDING
    assert (pending.requester, pending.auth_method) == ("alice", "basic")
    assert (pending.label, pending.operation, pending.subject) == (
        "held",
        "simpleenroll",
        "CN=device-1",
    )
    assert x509.load_pem_x509_csr(pending.csr_pem.encode()).public_key() == key.public_key()
    assert state.ledger.count() == 0


def test_retry_with_a_new_csr_is_the_same_request_until_approved(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    first = held_id(service.handle(request(csr_for(key, challenge="one")), ANON))
    # §4.2.3/R52: same key and subject, new CSR bytes (another challengePassword).
    assert held_id(service.handle(request(csr_for(key, challenge="two")), ANON)) == first
    assert len(state.ledger.list_pending()) == 1
    state.ledger.decide_pending(first, approve=True)
    cert = certificate(service.handle(request(csr_for(key, challenge="three")), ANON))
    assert cert.public_key() == key.public_key()
    pending = state.ledger.get_pending(first)
    assert pending is not None and pending.status is PendingStatus.ISSUED
    assert pending.serial == cert.serial_number
    entry = state.ledger.get(cert.serial_number)
    assert entry is not None and (entry.requester, entry.label) == ("alice", "held")


def test_retry_after_issuance_returns_the_same_certificate(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    first = certificate(service.handle(request(csr_for(key)), ANON))
    again = certificate(service.handle(request(csr_for(key)), ANON))
    assert again == first
    assert state.ledger.count() == 1


def test_on_issued_sees_each_committed_certificate_once(
    state: State, clock: Clock, key: ec.EllipticCurvePrivateKey
) -> None:
    # The metrics' issuance count hangs on this hook: the approved issuance counts, the 202
    # and the retry answered from the ledger do not.
    seen: list[IssuedCertificate] = []
    service = EstService(
        labels=LABELS,
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
        clock=clock,
        pending_retry_after=RETRY_AFTER,
        on_issued=seen.append,
    )
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    assert seen == []
    state.ledger.decide_pending(request_id, approve=True)
    cert = certificate(service.handle(request(csr_for(key)), ANON))
    certificate(service.handle(request(csr_for(key)), ANON))
    assert [(e.serial, e.label, e.operation) for e in seen] == [
        (cert.serial_number, "held", "simpleenroll")
    ]


def test_the_approved_csr_is_issued_not_the_retry(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key, dns=("a.example",))), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    cert = certificate(service.handle(request(csr_for(key, dns=("a.example", "b.example"))), ANON))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["a.example"]


def test_rejection_is_403_with_the_reason(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=False, reason="unknown device")
    for _ in range(2):
        with pytest.raises(Forbidden, match="rejected by the CA operator: unknown device") as info:
            service.handle(request(csr_for(key)), ANON)
        assert info.value.status == 403
    # A new key starts a new request.
    held_id(service.handle(request(csr_for(ec.generate_private_key(ec.SECP256R1()))), ANON))
    assert state.ledger.count() == 0


def test_another_requester_cannot_claim_the_request(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    with pytest.raises(Forbidden, match="belongs to another requester"):
        service.handle(request(csr_for(key), user="bob"), ANON)
    assert state.ledger.count() == 0


def test_refused_requests_are_not_queued(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    der = bytearray(csr_for(key).public_bytes(serialization.Encoding.DER))
    der[-1] ^= 0x01  # break the signature
    with pytest.raises(InvalidCsr, match="signature"):
        service.handle(request(csr_for(key), body=base64.b64encode(bytes(der))), ANON)
    unauthorized = LabelConfig(name="held", approval="manual")  # password_subjects = own
    strict = EstService(
        labels={"held": unauthorized},
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
    )
    with pytest.raises(Forbidden):
        strict.handle(request(csr_for(key, common_name="eve")), ANON)
    assert state.ledger.list_pending() == []


def test_revoked_or_expired_issue_starts_a_new_request(
    service: EstService, state: State, clock: Clock, key: ec.EllipticCurvePrivateKey
) -> None:
    first = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(first, approve=True)
    cert = certificate(service.handle(request(csr_for(key)), ANON))
    state.ledger.revoke(cert.serial_number, "keyCompromise")
    second = held_id(service.handle(request(csr_for(key)), ANON))
    assert second != first
    state.ledger.decide_pending(second, approve=True)
    renewed = certificate(service.handle(request(csr_for(key)), ANON))
    assert renewed.serial_number != cert.serial_number
    clock.now = renewed.not_valid_after_utc + timedelta(seconds=1)
    assert held_id(service.handle(request(csr_for(key)), ANON)) not in (first, second)


def test_serverkeygen_is_held_and_its_key_delivered_once(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key), "held/serverkeygen"), ANON))
    # /serverkeygen ignores the CSR key (§4.4.1): a /simpleenroll with that key is another
    # request, and can never be fulfilled by this one.
    enroll_id = held_id(service.handle(request(csr_for(key)), ANON))
    assert enroll_id != request_id
    state.ledger.decide_pending(request_id, approve=True)
    response = service.handle(request(csr_for(key), "held/serverkeygen"), ANON)
    content_type = response.header("Content-Type")
    assert response.status == 200 and content_type is not None
    parts = wire.parse_multipart(content_type, response.body)
    private_key = serialization.load_der_private_key(base64.b64decode(parts[0][1]), None)
    [cert] = wire.decode_certs_only(parts[1][1])
    assert cert.public_key() == private_key.public_key() != key.public_key()
    entry = state.ledger.get(cert.serial_number)
    assert entry is not None and entry.server_generated_key
    with pytest.raises(Forbidden, match="delivered only once"):
        service.handle(request(csr_for(key), "held/serverkeygen"), ANON)
    assert held_id(service.handle(request(csr_for(key)), ANON)) == enroll_id


def test_serverkeygen_retries_with_throwaway_keys_match_one_request(
    service: EstService, state: State
) -> None:
    # GlobalSign's client signs every attempt with a fresh key; label, requester, subject and
    # SANs recognise the retry (§4.4.1).
    def attempt(
        user: str = "alice", dns: tuple[str, ...] = ("d1.example", "d2.example")
    ) -> HttpResponse:
        throwaway = ec.generate_private_key(ec.SECP256R1())
        return service.handle(request(csr_for(throwaway, dns=dns), "held/serverkeygen", user), ANON)

    first = held_id(attempt())
    assert held_id(attempt()) == first
    assert held_id(attempt(dns=("d2.example", "d1.example"))) == first
    # Other names or another requester: another request.
    others = {held_id(attempt(dns=("d1.example",))), held_id(attempt(user="bob"))}
    assert first not in others and len(others) == 2
    state.ledger.decide_pending(first, approve=True)
    response = attempt()
    assert response.status == 200
    content_type = response.header("Content-Type")
    assert content_type is not None
    [cert] = wire.decode_certs_only(wire.parse_multipart(content_type, response.body)[1][1])
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == ["d1.example", "d2.example"]
    assert len(state.ledger.list_pending()) == 3  # this one, the one-SAN one and bob's


def test_reenrollment_is_not_held(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    # Renewing a certificate of the same label: its holder was already approved for it.
    cert, _ = state.ca.issue_client_certificate(common_name="device-1")
    state.ledger.record(
        IssuedCertificate.from_certificate(
            cert, requester="op", auth_method="cert", label="held", operation="simpleenroll"
        )
    )
    peer = PeerIdentity(
        "192.0.2.20:1", TLS12, client_cert=ClientCertificate((cert, *state.ca.chain), valid=True)
    )
    body = base64.b64encode(csr_for(key).public_bytes(serialization.Encoding.DER))
    reenroll = HttpRequest(
        "POST", f"{EST}/held/simplereenroll", (("content-type", "application/pkcs10"),), body
    )
    assert certificate(service.handle(reenroll, peer)).public_key() == key.public_key()
    assert state.ledger.list_pending() == []


# --- issuing once ---


def being_issued(response: HttpResponse) -> str:
    """The request id of a 202 answered while another retry holds the claim."""
    assert response.status == 202
    assert response.header("Retry-After") == str(RETRY_AFTER)
    text = response.body.decode()
    assert "is being issued" in text
    return text.split()[1]


def backdate_claim(config: Config, request_id: str, seconds: int) -> None:
    """Age the request's claim by `seconds`, as if its holder had stalled (or died) that long."""
    raw = sqlite3.connect(config.ledger.path, isolation_level=None)
    try:
        [claimed_at] = raw.execute(
            "SELECT claimed_at FROM pending_requests WHERE id = ?", (request_id,)
        ).fetchone()
        earlier = datetime.fromisoformat(claimed_at) - timedelta(seconds=seconds)
        raw.execute(
            "UPDATE pending_requests SET claimed_at = ? WHERE id = ?",
            (earlier.isoformat(timespec="microseconds"), request_id),
        )
    finally:
        raw.close()


def race(
    services: list[EstService], key: ec.EllipticCurvePrivateKey
) -> tuple[list[x509.Certificate], list[str]]:
    """Each service retries the approved request from two threads at once, each until a 200.

    Returns:
        Every client's certificate, and the request id of every 202 on the way.
    """
    clients = [service for service in services for _ in range(2)]
    barrier = threading.Barrier(len(clients))
    results: list[x509.Certificate] = []
    waits: list[str] = []

    def client(service: EstService) -> None:
        barrier.wait()
        for _ in range(500):
            response = service.handle(request(csr_for(key)), ANON)
            if response.status == 200:
                results.append(certificate(response))
                return
            waits.append(being_issued(response))  # a retry would come after Retry-After
            time.sleep(0.005)

    threads = [threading.Thread(target=client, args=(service,)) for service in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == len(clients)
    return results, waits


def test_concurrent_retries_issue_one_certificate(
    service: EstService, state: State, key: ec.EllipticCurvePrivateKey
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    results, waits = race([service, service], key)
    assert len(set(results)) == 1
    assert waits == []  # in one process, the others wait for the claimer: no 202
    assert state.ledger.count() == 1


def test_two_servers_on_one_ledger_file_issue_one_certificate(
    state: State, config: Config, clock: Clock, key: ec.EllipticCurvePrivateKey
) -> None:
    # Two servers on one ledger file, each with its own connection (as two processes); the
    # race is repeated, since one run may well never overlap.
    with SqliteLedger(config.ledger.path) as other:
        servers = [make_service(state, clock), make_service(state, clock, other)]
        for round_number in range(5):
            round_key = ec.generate_private_key(ec.SECP256R1()) if round_number else key
            request_id = held_id(
                servers[round_number % 2].handle(request(csr_for(round_key)), ANON)
            )
            state.ledger.decide_pending(request_id, approve=True)
            results, waits = race(servers, round_key)
            assert set(waits) <= {request_id}
            [cert] = set(results)
            entry = other.get(cert.serial_number)
            assert entry is not None and entry.revoked_at is None
            pending = other.get_pending(request_id)
            assert pending is not None and pending.status is PendingStatus.ISSUED
            assert pending.serial == cert.serial_number
            assert state.ledger.count() == round_number + 1  # exactly one signed per request
        assert state.ledger.list_certificates(revoked=True) == []


def test_a_retry_during_issuing_gets_202_then_the_same_certificate(
    state: State, config: Config, clock: Clock, key: ec.EllipticCurvePrivateKey
) -> None:
    there = make_service(state, clock, SqliteLedger(config.ledger.path))
    request_id = held_id(there.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    auth = Authentication(methods=frozenset({AuthMethod.BASIC}), basic_user="alice")
    issuer = Issuer(state.ca, state.ledger, clock)
    gate = ApprovalGate(state.ledger, retry_after=RETRY_AFTER, clock=clock)
    meanwhile: list[HttpResponse] = []

    def fulfil(approved: x509.CertificateSigningRequest) -> tuple[x509.Certificate, HttpResponse]:
        # The other server sees the request claimed while this one signs: it does not sign.
        meanwhile.append(there.handle(request(csr_for(key)), ANON))
        cert = issuer.issue(approved, HELD, auth, Operation.SIMPLEENROLL)
        return cert, certs_only_response(cert)

    cert = certificate(gate.admit(csr_for(key), HELD, auth, Operation.SIMPLEENROLL, fulfil))
    assert being_issued(meanwhile[0]) == request_id
    assert certificate(there.handle(request(csr_for(key)), ANON)) == cert
    assert state.ledger.count() == 1


def test_a_claim_whose_holder_died_is_issued_after_the_lease(
    service: EstService,
    state: State,
    config: Config,
    cfg: Path,
    key: ec.EllipticCurvePrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    request_id = held_id(service.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    # A process claimed it and was killed (kill -9) before marking it issued.
    assert state.ledger.claim_pending(request_id, holder="gone/1/x", lease_seconds=60)
    assert being_issued(service.handle(request(csr_for(key)), ANON)) == request_id
    capsys.readouterr()
    assert main(["-c", str(cfg), "requests", "list", "--status", "issuing"]) == 0
    [line] = capsys.readouterr().out.splitlines()
    assert line.split("\t")[:3:2] == [request_id, "issuing"]
    assert main(["-c", str(cfg), "requests", "show", request_id]) == 0
    assert "by gone/1/x" in capsys.readouterr().out

    backdate_claim(config, request_id, CLAIM_LEASE_S - 5)
    assert being_issued(service.handle(request(csr_for(key)), ANON)) == request_id
    backdate_claim(config, request_id, 10)
    cert = certificate(service.handle(request(csr_for(key)), ANON))
    pending = state.ledger.get_pending(request_id)
    assert pending is not None and pending.status is PendingStatus.ISSUED
    assert pending.serial == cert.serial_number and pending.claimed_by != "gone/1/x"
    assert state.ledger.count() == 1


def test_a_holder_that_outlived_its_lease_revokes_its_unsent_duplicate(
    state: State,
    config: Config,
    clock: Clock,
    key: ec.EllipticCurvePrivateKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The defensive path: this holder stalls past the lease while signing, the other server
    # claims the request again and issues it; this holder's mark then fails.
    there = make_service(state, clock, SqliteLedger(config.ledger.path))
    request_id = held_id(there.handle(request(csr_for(key)), ANON))
    state.ledger.decide_pending(request_id, approve=True)
    auth = Authentication(methods=frozenset({AuthMethod.BASIC}), basic_user="alice")
    issuer = Issuer(state.ca, state.ledger, clock)
    gate = ApprovalGate(state.ledger, retry_after=RETRY_AFTER, clock=clock)
    winner: list[x509.Certificate] = []

    def fulfil(approved: x509.CertificateSigningRequest) -> tuple[x509.Certificate, HttpResponse]:
        backdate_claim(config, request_id, CLAIM_LEASE_S + 1)
        winner.append(certificate(there.handle(request(csr_for(key)), ANON)))
        cert = issuer.issue(approved, HELD, auth, Operation.SIMPLEENROLL)
        return cert, certs_only_response(cert)

    with caplog.at_level(logging.WARNING, logger="python_est.service"):
        response = gate.admit(csr_for(key), HELD, auth, Operation.SIMPLEENROLL, fulfil)
    assert certificate(response) == winner[0]
    assert "revoked duplicate" in caplog.text
    entries = state.ledger.list_certificates()
    assert len(entries) == 2
    [duplicate] = [e for e in entries if e.serial != winner[0].serial_number]
    assert duplicate.revocation_reason == "superseded"
    assert not state.ledger.is_revoked(winner[0].serial_number)
    pending = state.ledger.get_pending(request_id)
    assert pending is not None and pending.serial == winner[0].serial_number


# --- python-est requests ---


def test_requests_cli_lists_shows_approves_and_rejects(
    service: EstService,
    state: State,
    cfg: Path,
    key: ec.EllipticCurvePrivateKey,
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = held_id(service.handle(request(csr_for(key, dns=("dev1.example",))), ANON))
    other_key = ec.generate_private_key(ec.SECP256R1())
    second = held_id(service.handle(request(csr_for(other_key, "device-2")), ANON))
    capsys.readouterr()

    assert main(["-c", str(cfg), "requests", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == [first, second]
    assert "CN=device-1" in lines[0] and "alice (basic)" in lines[0]
    assert "DNS:dev1.example" in lines[0] and "pending" in lines[0]

    assert main(["-c", str(cfg), "requests", "show", first[:8]]) == 0
    assert "-----BEGIN CERTIFICATE REQUEST-----" in capsys.readouterr().out

    assert main(["-c", str(cfg), "requests", "approve", first]) == 0
    assert "approved" in capsys.readouterr().out
    assert main(["-c", str(cfg), "requests", "reject", second, "--reason", "not ours"]) == 0
    assert main(["-c", str(cfg), "requests", "approve", second]) == 1
    assert "already rejected" in capsys.readouterr().err
    assert main(["-c", str(cfg), "requests", "approve", "ffff"]) == 1
    assert "matches no request" in capsys.readouterr().err

    assert main(["-c", str(cfg), "requests", "list"]) == 0
    assert "no pending requests" in capsys.readouterr().out
    assert main(["-c", str(cfg), "requests", "list", "--status", "all"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2

    certificate(service.handle(request(csr_for(key, dns=("dev1.example",))), ANON))
    with pytest.raises(Forbidden, match="not ours"):
        service.handle(request(csr_for(other_key, "device-2")), ANON)
    assert main(["-c", str(cfg), "requests", "show", first]) == 0
    assert "issued serial" in capsys.readouterr().out


def test_reject_needs_a_reason(state: State, cfg: Path) -> None:
    with pytest.raises(SystemExit) as info:
        main(["-c", str(cfg), "requests", "reject", "abc"])
    assert info.value.code == 2


def test_requests_cli_without_state_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "empty.cfg"
    cfg.write_text("[server]\nstate_dir = nothing-here\n")
    assert main(["-c", str(cfg), "requests", "list"]) == 2
    assert f"python-est -c {cfg} init" in capsys.readouterr().err


# --- which requests wait for an operator (issue 13 item 1) ---

RA_PROFILE = IssuanceProfile(
    name="ra", extended_key_usage=(oids.ID_KP_CLIENT_AUTH, oids.ID_KP_CMC_RA)
)
ENROLL, REENROLL, KEYGEN = Operation.SIMPLEENROLL, Operation.SIMPLEREENROLL, Operation.SERVERKEYGEN


@pytest.mark.parametrize(
    ("label", "operation", "source", "held"),
    [
        (LabelConfig(name="a"), ENROLL, None, False),
        (LabelConfig(name="a"), REENROLL, "", False),  # auto: even from another label
        (LabelConfig(name="m", approval="manual"), ENROLL, None, True),
        (LabelConfig(name="m", approval="manual"), KEYGEN, None, True),
        (LabelConfig(name="m", approval="manual"), REENROLL, "m", False),  # its own certificate
        (LabelConfig(name="m", approval="manual"), REENROLL, "", True),  # from another label
        (LabelConfig(name="ra", profile=RA_PROFILE), ENROLL, None, True),  # cmcRA: always
        (LabelConfig(name="ra", profile=RA_PROFILE), KEYGEN, None, True),
        (LabelConfig(name="ra", profile=RA_PROFILE), REENROLL, "ra", True),
    ],
)
def test_needs_approval(
    label: LabelConfig, operation: Operation, source: str | None, held: bool
) -> None:
    assert needs_approval(label, operation, source) is held
