"""EstService: HttpRequest values in, HttpResponse values out (or a specific EstError raised).

A real CA, a real SQLite ledger and a real user store; no sockets, no mocks.
"""

from __future__ import annotations

import base64
import ipaddress
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ObjectIdentifier

from python_est import oids, wire
from python_est.ca import CertificateAuthority
from python_est.config import AuthMethod, LabelConfig
from python_est.errors import (
    AuthenticationRequired,
    CaError,
    EstError,
    Forbidden,
    InvalidCsr,
    LedgerError,
    MalformedBody,
    MethodNotAllowed,
    NotFound,
    NotImplementedOperation,
    TooManyRequests,
    Unavailable,
    UnsupportedMediaType,
)
from python_est.keys import KeyType
from python_est.ledger import IssuedCertificate, SqliteLedger, serial_hex
from python_est.messages import HttpRequest, HttpResponse, error_response
from python_est.policy import ClientCertificate, PeerIdentity, TlsInfo
from python_est.profile import IssuanceProfile
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.service import EstService
from python_est.users import UserStore
from tests.conftest import captured_records

CERT, SRP, BASIC = AuthMethod.CERT, AuthMethod.SRP, AuthMethod.BASIC
EST = "/.well-known/est"
REALM = "test-realm"
CHALLENGE = f'Basic realm="{REALM}", charset="UTF-8"'
TLS_UNIQUE = bytes(range(100, 112))
TLS12 = TlsInfo(
    "TLS1.2",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    tls_unique=TLS_UNIQUE,
    extended_master_secret=True,
)
ANON = PeerIdentity("192.0.2.10:40000", TLS12)
RFC8951_CSRATTRS = (
    "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw=="
)
RFC8951_SPEC = (
    "challengePassword, id-ecPublicKey=secp384r1, extensionRequest=macAddress, ecdsa-with-SHA384"
)
CERTS_ONLY_HEADERS = (
    ("Content-Type", "application/pkcs7-mime; smime-type=certs-only"),
    ("Content-Transfer-Encoding", "base64"),
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recorded_device(
    ca: CertificateAuthority, ledger: SqliteLedger, common_name: str, label: str = ""
) -> x509.Certificate:
    """A device certificate of this CA, recorded in the ledger under `label` (as issued)."""
    device, _ = ca.issue_client_certificate(common_name=common_name)
    ledger.record(
        IssuedCertificate.from_certificate(
            device, requester="test", auth_method="admin", label=label, operation="simpleenroll"
        )
    )
    return device


# --- fixtures ---


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Service Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def users_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "users.json"
    store = UserStore.create(path, reload_interval=None)
    store.add("alice", "alice-pw")
    store.add("bob", "bob-pw", allowed_names=["bob", "bob.example", "192.0.2.77"])
    return path


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# A pair locks at 3, an account at 5, an address at 6 failures within 60 s; locks last 90 s.
LIMITS = Limits(3, account_max_failures=5, address_max_failures=6, window=60, lockout=90)


LABELS = {
    "": LabelConfig(),
    "any": LabelConfig(name="any", password_subjects="any"),
    "both": LabelConfig(
        name="both",
        enroll_auth=(frozenset({CERT, BASIC}),),
        reenroll_auth=(frozenset({CERT, BASIC}),),
        reenroll_from=("",),
    ),
    "certonly": LabelConfig(name="certonly", enroll_auth=(frozenset({CERT}),)),
    "pop": LabelConfig(name="pop", require_pop=True, csrattrs="ecdsa-with-SHA384"),
    "rfc": LabelConfig(name="rfc", csrattrs=RFC8951_SPEC),
    "popempty": LabelConfig(name="popempty", require_pop=True),
    "nokeygen": LabelConfig(name="nokeygen", serverkeygen=False),
    "short": LabelConfig(name="short", profile=IssuanceProfile(name="short", validity_days=7)),
}


def make_service(
    ca: CertificateAuthority, ledger: SqliteLedger, users_path: Path, clock: FakeClock
) -> EstService:
    return EstService(
        labels=LABELS,
        ca=ca,
        ledger=ledger,
        users=UserStore(users_path, reload_interval=None),
        limiter=LoginLimiter(MemoryCounters(clock=clock), LIMITS),
        realm=REALM,
    )


@pytest.fixture
def service(
    ca: CertificateAuthority, ledger: SqliteLedger, users_path: Path, clock: FakeClock
) -> EstService:
    return make_service(ca, ledger, users_path, clock)


@pytest.fixture
def audit_records() -> Iterator[list[logging.LogRecord]]:
    with captured_records("python_est.audit", logging.INFO) as records:
        yield records


# --- helpers ---


def csr_der(
    key: ec.EllipticCurvePrivateKey,
    common_name: str | None,
    sans: Sequence[x509.GeneralName] = (),
    *,
    challenge: str | None = None,
    attributes: Sequence[tuple[ObjectIdentifier, bytes]] = (),
) -> bytes:
    subject = [] if common_name is None else [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(subject))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    if challenge is not None:
        builder = builder.add_attribute(oids.CHALLENGE_PASSWORD, challenge.encode())
    for oid, value in attributes:
        builder = builder.add_attribute(oid, value, _tag=x509.name._ASN1Type.OctetString)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def csr_body(key: ec.EllipticCurvePrivateKey, common_name: str | None, **kw: object) -> bytes:
    return base64.encodebytes(csr_der(key, common_name, **kw))  # type: ignore[arg-type]


def basic(user: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("authorization", f"Basic {token}")


def post(
    op: str,
    body: bytes,
    *headers: tuple[str, str],
    content_type: str | None = "application/pkcs10",
) -> HttpRequest:
    fields = (() if content_type is None else (("content-type", content_type),)) + headers
    return HttpRequest("POST", f"{EST}/{op}", fields, body)


def get(op: str) -> HttpRequest:
    return HttpRequest("GET", f"{EST}/{op}", ())


def cert_peer(
    chain_leaf: x509.Certificate,
    ca: CertificateAuthority,
    *,
    ra: bool = False,
    valid: bool = True,
    reason: str = "",
    srp_user: str | None = None,
) -> PeerIdentity:
    client = ClientCertificate((chain_leaf, *ca.chain), valid=valid, reason=reason, is_ra=ra)
    return PeerIdentity("192.0.2.20:40001", TLS12, client_cert=client, srp_user=srp_user)


def issued(response: HttpResponse) -> x509.Certificate:
    assert response.status == 200
    assert response.headers == CERTS_ONLY_HEADERS
    certs = wire.decode_certs_only(response.body)
    assert len(certs) == 1  # §4.2.3: only the issued certificate
    return certs[0]


def spki(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def enroll(
    service: EstService, key: ec.EllipticCurvePrivateKey, user: str, password: str
) -> x509.Certificate:
    return issued(
        service.handle(post("simpleenroll", csr_body(key, user), basic(user, password)), ANON)
    )


def raises(
    service: EstService, request: HttpRequest, peer: PeerIdentity, kind: type[EstError]
) -> EstError:
    with pytest.raises(kind) as info:
        service.handle(request, peer)
    return info.value


# --- /cacerts ---


@pytest.mark.parametrize("path", ["cacerts", "any/cacerts"])
def test_cacerts(service: EstService, ca: CertificateAuthority, path: str) -> None:
    response = service.handle(get(path), ANON)
    assert response.status == 200
    assert response.headers == (
        ("Content-Type", "application/pkcs7-mime"),
        ("Content-Transfer-Encoding", "base64"),
    )
    assert b"-----BEGIN" not in response.body
    assert set(wire.decode_certs_only(response.body)) == set(ca.chain)


def test_cacerts_with_issuing_ca_returns_whole_chain(
    ledger: SqliteLedger, users_path: Path, clock: FakeClock
) -> None:
    chained = CertificateAuthority.create(
        common_name="Issuing", key_type=KeyType.EC_P256, validity_days=30, issuing_ca=True
    )
    response = make_service(chained, ledger, users_path, clock).handle(get("cacerts"), ANON)
    assert len(chained.chain) == 2
    assert set(wire.decode_certs_only(response.body)) == set(chained.chain)


def test_cacerts_without_ca_is_5xx(
    ca: CertificateAuthority, ledger: SqliteLedger, users_path: Path, clock: FakeClock
) -> None:
    from python_est.ca import CaMaterial

    broken = CertificateAuthority(CaMaterial(ca.certificate, ca.private_key, chain=()))
    err = raises(make_service(broken, ledger, users_path, clock), get("cacerts"), ANON, CaError)
    assert err.status == 500


# --- routing ---


@pytest.mark.parametrize(
    ("method", "op", "allowed"),
    [
        ("POST", "cacerts", "GET"),
        ("PUT", "cacerts", "GET"),
        ("GET", "simpleenroll", "POST"),
        ("GET", "simplereenroll", "POST"),
        ("POST", "csrattrs", "GET"),
        ("GET", "serverkeygen", "POST"),
        ("GET", "fullcmc", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    service: EstService, method: str, op: str, allowed: str
) -> None:
    err = raises(service, HttpRequest(method, f"{EST}/{op}", ()), ANON, MethodNotAllowed)
    assert err.status == 405
    assert err.headers() == (("Allow", allowed),)


@pytest.mark.parametrize(
    "target",
    [
        f"{EST}/nolabel/cacerts",
        f"{EST}/a/b/cacerts",
        f"{EST}/unknown",
        f"{EST}/any/unknown",
        f"{EST}/../cacerts",
        "/est/cacerts",
        "/bootstrap",
        f"{EST}/bootstrap",
        "/",
    ],
)
def test_unknown_paths_and_labels_are_404(service: EstService, target: str) -> None:
    assert raises(service, HttpRequest("GET", target, ()), ANON, NotFound).status == 404


def test_fullcmc_is_501(service: EstService) -> None:
    err = raises(service, post("fullcmc", b"MAA="), ANON, NotImplementedOperation)
    assert err.status == 501
    assert "Full CMC" in err.detail


# --- /simpleenroll: success paths ---


def test_enroll_with_basic(
    service: EstService,
    ledger: SqliteLedger,
    key: ec.EllipticCurvePrivateKey,
    audit_records: list[logging.LogRecord],
) -> None:
    response = service.handle(
        post("simpleenroll", csr_body(key, "alice"), basic("alice", "alice-pw")), ANON
    )
    cert = issued(response)
    assert spki(cert.public_key()) == spki(key.public_key())
    assert cert.subject.rfc4514_string() == "CN=alice"
    row = ledger.get(cert.serial_number)
    assert row is not None
    assert (row.requester, row.auth_method, row.label, row.operation) == (
        "alice",
        "basic",
        "",
        "simpleenroll",
    )
    assert row.pem == cert.public_bytes(serialization.Encoding.PEM).decode()
    [record] = audit_records
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert f"serial={serial_hex(cert.serial_number)} " in message
    assert "CN=alice" in message and "requester='alice'" in message
    assert "auth=basic" in message and "operation=simpleenroll" in message
    assert "alice-pw" not in message


def test_enroll_with_srp(
    service: EstService, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    peer = PeerIdentity("192.0.2.30:1", TLS12, srp_user="bob")
    cert = issued(service.handle(post("simpleenroll", csr_body(key, "bob.example")), peer))
    row = ledger.get(cert.serial_number)
    assert row is not None and (row.requester, row.auth_method) == ("bob", "srp")


def test_srp_alone_satisfies_even_with_a_wrong_basic_header(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    peer = PeerIdentity("192.0.2.30:1", TLS12, srp_user="bob")
    request = post("simpleenroll", csr_body(key, "bob"), basic("bob", "wrong"))
    issued(service.handle(request, peer))


def test_enroll_with_client_certificate(
    service: EstService,
    ledger: SqliteLedger,
    ca: CertificateAuthority,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    device = recorded_device(ca, ledger, "dev1")
    cert = issued(
        service.handle(post("simpleenroll", csr_body(key, "dev1")), cert_peer(device, ca))
    )
    row = ledger.get(cert.serial_number)
    assert row is not None and (row.requester, row.auth_method) == ("CN=dev1", "cert")


def test_empty_basic_is_ignored_when_the_certificate_suffices(
    service: EstService,
    ca: CertificateAuthority,
    ledger: SqliteLedger,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    # libest estclient retries with `Authorization: Basic Og==` after a 401.
    device = recorded_device(ca, ledger, "dev1")
    request = post("simpleenroll", csr_body(key, "dev1"), ("authorization", "Basic Og=="))
    issued(service.handle(request, cert_peer(device, ca)))


def test_enroll_body_tolerances(service: EstService, key: ec.EllipticCurvePrivateKey) -> None:
    # RFC 8951 §3: Content-Transfer-Encoding ignored, white space inside base64 tolerated;
    # the media type is parsed leniently.
    b64 = base64.b64encode(csr_der(key, "alice"))
    body = b"\r\n".join(b64[i : i + 10] + b" \t" for i in range(0, len(b64), 10)) + b"\r\n"
    request = post(
        "simpleenroll",
        body,
        ("content-transfer-encoding", "binary"),
        basic("alice", "alice-pw"),
        content_type='Application/PKCS10 ; name="csr.p10"',
    )
    issued(service.handle(request, ANON))


def test_labelled_profile_is_used(
    service: EstService, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    request = post("short/simpleenroll", csr_body(key, "alice"), basic("alice", "alice-pw"))
    request = HttpRequest("POST", f"{EST}/short/simpleenroll", request.headers, request.body)
    cert = issued(service.handle(request, ANON))
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days <= 7
    row = ledger.get(cert.serial_number)
    assert row is not None and row.label == "short"


# --- /simpleenroll: ledger first ---


class CollidingLedger(SqliteLedger):
    """A real ledger in which the next `collisions` serials are already taken."""

    collisions = 1

    def record(self, entry: IssuedCertificate) -> None:
        if self.collisions > 0:
            self.collisions -= 1
            super().record(entry)  # the serial is now taken: the real record below collides
        super().record(entry)


def test_serial_collision_signs_again(
    tmp_path: Path,
    ca: CertificateAuthority,
    users_path: Path,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    ledger = CollidingLedger(tmp_path / "l.sqlite3")
    cert = enroll(make_service(ca, ledger, users_path, clock), key, "alice", "alice-pw")
    assert ledger.count() == 2
    assert ledger.get(cert.serial_number) is not None


def test_persistent_serial_collisions_fail(
    tmp_path: Path,
    ca: CertificateAuthority,
    users_path: Path,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    ledger = CollidingLedger(tmp_path / "l.sqlite3")
    ledger.collisions = 3
    service = make_service(ca, ledger, users_path, clock)
    request = post("simpleenroll", csr_body(key, "alice"), basic("alice", "alice-pw"))
    assert raises(service, request, ANON, LedgerError).status == 500


def test_no_certificate_without_a_ledger_record(
    tmp_path: Path,
    ca: CertificateAuthority,
    users_path: Path,
    clock: FakeClock,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    SqliteLedger(tmp_path / "ro.sqlite3").close()
    read_only = SqliteLedger(tmp_path / "ro.sqlite3", read_only=True)
    service = make_service(ca, read_only, users_path, clock)
    request = post("simpleenroll", csr_body(key, "alice"), basic("alice", "alice-pw"))
    err = raises(service, request, ANON, Unavailable)
    assert err.status == 503 and ("Retry-After", "30") in err.headers()
    assert read_only.count() == 0


# --- authentication failures ---


def test_anonymous_enroll_is_401_with_challenge(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    err = raises(
        service, post("simpleenroll", csr_body(key, "alice")), ANON, AuthenticationRequired
    )
    assert err.status == 401
    assert err.headers() == (("WWW-Authenticate", CHALLENGE),)
    response = error_response(err)
    assert response.status == 401
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("WWW-Authenticate") == CHALLENGE
    assert response.body.decode().count("\n") == 1
    assert response.body.startswith(b"Unauthorized: ")


@pytest.mark.parametrize(
    "header",
    [
        basic("alice", "wrong"),
        basic("nobody", "alice-pw"),
        basic("", "secret"),  # R33: an empty user name parses and is checked
        ("authorization", "Basic !!!notbase64"),
        ("authorization", "Basic Og=="),
        ("authorization", "Bearer abc"),
    ],
)
def test_bad_credentials_are_401_with_challenge(
    service: EstService, key: ec.EllipticCurvePrivateKey, header: tuple[str, str]
) -> None:
    err = raises(
        service, post("simpleenroll", csr_body(key, "alice"), header), ANON, AuthenticationRequired
    )
    assert err.status == 401
    assert err.headers() == (("WWW-Authenticate", CHALLENGE),)


def test_certificate_only_label_sends_no_challenge(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    request = HttpRequest(
        "POST",
        f"{EST}/certonly/simpleenroll",
        (("content-type", "application/pkcs10"), basic("alice", "alice-pw")),
        csr_body(key, "alice"),
    )
    err = raises(service, request, ANON, AuthenticationRequired)
    assert err.headers() == ()
    assert "accepted: cert" in err.detail


def test_invalid_certificate_reason_is_reported(
    service: EstService, ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    device, _ = ca.issue_client_certificate(common_name="dev1")
    peer = cert_peer(device, ca, valid=False, reason="certificate has expired")
    err = raises(service, post("simpleenroll", csr_body(key, "dev1")), peer, AuthenticationRequired)
    assert "client certificate not accepted: certificate has expired" in err.detail


def test_cert_plus_basic_needs_both(
    service: EstService,
    ca: CertificateAuthority,
    ledger: SqliteLedger,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    device = recorded_device(ca, ledger, "alice", "both")
    path = f"{EST}/both/simpleenroll"
    ctype = ("content-type", "application/pkcs10")
    body = csr_body(key, "alice")
    err = raises(
        service,
        HttpRequest("POST", path, (ctype,), body),
        cert_peer(device, ca),
        AuthenticationRequired,
    )
    assert err.headers() == (("WWW-Authenticate", CHALLENGE),)
    # Basic alone cannot complete "cert+basic": no challenge for a peer without a certificate.
    err = raises(
        service,
        HttpRequest("POST", path, (ctype, basic("alice", "alice-pw")), body),
        ANON,
        AuthenticationRequired,
    )
    assert err.headers() == ()
    request = HttpRequest("POST", path, (ctype, basic("alice", "alice-pw")), body)
    cert = issued(service.handle(request, cert_peer(device, ca)))
    row = ledger.get(cert.serial_number)
    assert row is not None and row.auth_method == "cert+basic"
    assert row.requester == "alice + CN=alice"


def test_repeated_failures_are_429(
    service: EstService, clock: FakeClock, key: ec.EllipticCurvePrivateKey
) -> None:
    body = csr_body(key, "alice")
    for _ in range(3):
        raises(
            service,
            post("simpleenroll", body, basic("alice", "guess")),
            ANON,
            AuthenticationRequired,
        )
    # The pair is locked: even the right password is not tried, and the 429 says for how long.
    err = raises(
        service, post("simpleenroll", body, basic("alice", "alice-pw")), ANON, TooManyRequests
    )
    assert err.status == 429
    assert err.headers() == (("Retry-After", "90"),)
    assert (
        err.detail
        == "too many failed logins for this user name from this address; locked for another 90 s"
    )
    # A look-alike spelling is the same counter: FULLWIDTH A, upper case, folds to "alice".
    lookalike = raises(
        service, post("simpleenroll", body, basic("\uff21LICE", "guess")), ANON, TooManyRequests
    )
    assert lookalike.status == 429
    # Another user behind the same address, and alice from elsewhere, still get in.
    issued(service.handle(post("simpleenroll", csr_body(key, "bob"), basic("bob", "bob-pw")), ANON))
    elsewhere = PeerIdentity("198.51.100.1:2", TLS12)
    issued(service.handle(post("simpleenroll", body, basic("alice", "alice-pw")), elsewhere))
    clock.now += 91
    enroll(service, key, "alice", "alice-pw")


def test_success_resets_the_pair_count(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    body = csr_body(key, "alice")
    for _ in range(2):
        for _ in range(2):
            raises(
                service,
                post("simpleenroll", body, basic("alice", "x")),
                ANON,
                AuthenticationRequired,
            )
        issued(service.handle(post("simpleenroll", body, basic("alice", "alice-pw")), ANON))


def test_guessing_one_account_from_many_addresses_locks_the_account(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    body = csr_body(key, "alice")
    peers = [PeerIdentity(f"198.51.100.{i}:1", TLS12) for i in range(6)]
    for peer in peers[:5]:
        raises(
            service, post("simpleenroll", body, basic("alice", "x")), peer, AuthenticationRequired
        )
    err = raises(
        service, post("simpleenroll", body, basic("alice", "alice-pw")), peers[5], TooManyRequests
    )
    assert "for this user name;" in err.detail


# --- request body and media type ---


@pytest.mark.parametrize(
    ("content_type", "detail"),
    [
        (None, "missing Content-Type"),
        ("text/plain", "must be application/pkcs10"),
        ("application/pkcs7-mime; smime-type=CMC-request", "must be application/pkcs10"),
        ("garbage", "malformed Content-Type"),
    ],
)
def test_wrong_content_type_is_415(
    service: EstService, key: ec.EllipticCurvePrivateKey, content_type: str | None, detail: str
) -> None:
    request = post(
        "simpleenroll",
        csr_body(key, "alice"),
        basic("alice", "alice-pw"),
        content_type=content_type,
    )
    err = raises(service, request, ANON, UnsupportedMediaType)
    assert err.status == 415 and detail in err.detail


def test_bad_bodies_are_400(
    service: EstService, ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    der = csr_der(key, "alice")
    pem = (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(der)
        + b"-----END CERTIFICATE REQUEST-----\n"
    )
    cert_b64 = base64.b64encode(ca.certificate.public_bytes(serialization.Encoding.DER))
    cases: list[tuple[bytes, type[EstError], str]] = [
        (der, MalformedBody, "binary DER"),
        (pem, MalformedBody, "PEM"),
        (b"garbage!!", MalformedBody, "base64"),
        (b"", MalformedBody, "empty"),
        (base64.b64encode(der + b"\x00\x00"), MalformedBody, "trailing"),
        (cert_b64, InvalidCsr, "certificate"),
    ]
    for body, kind, detail in cases:
        err = raises(service, post("simpleenroll", body, basic("alice", "alice-pw")), ANON, kind)
        assert err.status == 400
        assert detail in err.detail, (body[:20], err.detail)


def test_bad_signature_is_400(service: EstService, key: ec.EllipticCurvePrivateKey) -> None:
    der = bytearray(csr_der(key, "alice"))
    der[-3] ^= 0x01
    request = post("simpleenroll", base64.b64encode(bytes(der)), basic("alice", "alice-pw"))
    err = raises(service, request, ANON, InvalidCsr)
    assert err.status == 400


# --- authorization ---


def test_password_user_may_not_take_other_names(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    request = post("simpleenroll", csr_body(key, "mallory"), basic("alice", "alice-pw"))
    err = raises(service, request, ANON, Forbidden)
    assert err.status == 403
    assert err.detail == "subject CN 'mallory' is not allowed for user 'alice'"
    sans = [
        x509.DNSName("bob.example"),
        x509.IPAddress(ipaddress.ip_address("192.0.2.77")),
    ]
    issued(
        service.handle(
            post("simpleenroll", csr_body(key, "bob", sans=sans), basic("bob", "bob-pw")), ANON
        )
    )
    request = post(
        "simpleenroll",
        csr_body(key, "bob", sans=[x509.DNSName("x.example")]),
        basic("bob", "bob-pw"),
    )
    assert "subjectAltName DNS 'x.example'" in raises(service, request, ANON, Forbidden).detail


def test_password_subjects_any(service: EstService, key: ec.EllipticCurvePrivateKey) -> None:
    request = HttpRequest(
        "POST",
        f"{EST}/any/simpleenroll",
        (("content-type", "application/pkcs10"), basic("alice", "alice-pw")),
        csr_body(key, "mallory"),
    )
    assert issued(service.handle(request, ANON)).subject.rfc4514_string() == "CN=mallory"


def test_ra_may_request_any_subject(
    service: EstService, ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    ra, _ = ca.issue_client_certificate(
        common_name="ra1", extended_key_usage=(oids.ID_KP_CLIENT_AUTH, oids.ID_KP_CMC_RA)
    )
    request = post("simpleenroll", csr_body(key, "device-42", sans=[x509.DNSName("d42.example")]))
    cert = issued(service.handle(request, cert_peer(ra, ca, ra=True)))
    assert cert.subject.rfc4514_string() == "CN=device-42"


def test_plain_certificate_may_request_only_itself(
    service: EstService,
    ca: CertificateAuthority,
    ledger: SqliteLedger,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    device = recorded_device(ca, ledger, "dev1")
    err = raises(
        service, post("simpleenroll", csr_body(key, "dev2")), cert_peer(device, ca), Forbidden
    )
    assert "differs from the client certificate's subject" in err.detail


# --- /simplereenroll (RFC 7030 §4.2.2) ---


@pytest.fixture
def enrolled(
    service: EstService, key: ec.EllipticCurvePrivateKey, ca: CertificateAuthority
) -> PeerIdentity:
    sans = [x509.DNSName("bob.example")]
    request = post("simpleenroll", csr_body(key, "bob", sans=sans), basic("bob", "bob-pw"))
    return cert_peer(issued(service.handle(request, ANON)), ca)


def test_reenroll_renew_and_rekey(
    service: EstService,
    ledger: SqliteLedger,
    enrolled: PeerIdentity,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    sans = [x509.DNSName("bob.example")]
    renewed = issued(
        service.handle(post("simplereenroll", csr_body(key, "bob", sans=sans)), enrolled)
    )
    assert spki(renewed.public_key()) == spki(key.public_key())
    new_key = ec.generate_private_key(ec.SECP256R1())
    rekeyed = issued(
        service.handle(post("simplereenroll", csr_body(new_key, "bob", sans=sans)), enrolled)
    )
    assert spki(rekeyed.public_key()) == spki(new_key.public_key())
    row = ledger.get(rekeyed.serial_number)
    assert row is not None
    assert (row.operation, row.auth_method, row.requester) == ("simplereenroll", "cert", "CN=bob")


@pytest.mark.parametrize(
    ("common_name", "sans", "field"),
    [
        ("bobby", ["bob.example"], "subject"),
        ("bob", ["bob.example", "extra.example"], "subjectAltName"),
        ("bob", [], "subjectAltName"),
    ],
)
def test_reenroll_name_changes_are_403(
    service: EstService,
    enrolled: PeerIdentity,
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    sans: list[str],
    field: str,
) -> None:
    body = csr_body(key, common_name, sans=[x509.DNSName(s) for s in sans])
    err = raises(service, post("simplereenroll", body), enrolled, Forbidden)
    assert err.status == 403 and f"reenrollment {field}" in err.detail


@pytest.mark.parametrize(
    "peer",
    [ANON, PeerIdentity("192.0.2.30:1", TLS12, srp_user="bob")],
    ids=["anonymous", "srp"],
)
def test_reenroll_without_client_certificate_is_403(
    service: EstService, key: ec.EllipticCurvePrivateKey, peer: PeerIdentity
) -> None:
    request = post("simplereenroll", csr_body(key, "bob"), basic("bob", "bob-pw"))
    err = raises(service, request, peer, Forbidden)
    assert err.detail == (
        "reenrollment requires the client certificate being renewed (RFC 7030 §4.2.2)"
    )


def test_reenroll_refuses_foreign_and_revoked_certificates(
    service: EstService,
    ledger: SqliteLedger,
    enrolled: PeerIdentity,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    other = CertificateAuthority.create(
        common_name="Other CA", key_type=KeyType.EC_P256, validity_days=5
    )
    foreign, _ = other.issue_client_certificate(common_name="bob", dns_names=["bob.example"])
    body = csr_body(key, "bob", sans=[x509.DNSName("bob.example")])
    err = raises(service, post("simplereenroll", body), cert_peer(foreign, other), Forbidden)
    assert "not issued by this EST CA" in err.detail
    assert enrolled.client_cert is not None
    ledger.revoke(enrolled.client_cert.leaf.serial_number, "keyCompromise")
    err = raises(service, post("simplereenroll", body), enrolled, Forbidden)
    assert "revoked" in err.detail


def test_reenroll_with_invalid_certificate_names_the_reason(
    service: EstService, ca: CertificateAuthority, key: ec.EllipticCurvePrivateKey
) -> None:
    device, _ = ca.issue_client_certificate(common_name="dev1")
    peer = cert_peer(device, ca, valid=False, reason="revoked")
    err = raises(service, post("simplereenroll", csr_body(key, "dev1")), peer, Forbidden)
    assert err.detail.endswith("the certificate presented: revoked")


def test_reenroll_with_libest_empty_basic(
    service: EstService, enrolled: PeerIdentity, key: ec.EllipticCurvePrivateKey
) -> None:
    body = csr_body(key, "bob", sans=[x509.DNSName("bob.example")])
    issued(service.handle(post("simplereenroll", body, ("authorization", "Basic Og==")), enrolled))


def test_reenroll_cert_plus_basic_label(
    service: EstService, enrolled: PeerIdentity, key: ec.EllipticCurvePrivateKey
) -> None:
    body = csr_body(key, "bob", sans=[x509.DNSName("bob.example")])
    path = f"{EST}/both/simplereenroll"
    ctype = ("content-type", "application/pkcs10")
    err = raises(
        service, HttpRequest("POST", path, (ctype,), body), enrolled, AuthenticationRequired
    )
    assert err.headers() == (("WWW-Authenticate", CHALLENGE),)
    issued(
        service.handle(HttpRequest("POST", path, (ctype, basic("bob", "bob-pw")), body), enrolled)
    )


# --- /csrattrs ---


def test_csrattrs_nothing_configured_is_204(service: EstService) -> None:
    response = service.handle(get("csrattrs"), ANON)
    assert (response.status, response.headers, response.body) == (204, (), b"")


def test_csrattrs_rfc8951_example_round_trip(service: EstService) -> None:
    response = service.handle(get("rfc/csrattrs"), ANON)
    assert response.status == 200
    assert response.headers == (
        ("Content-Type", "application/csrattrs"),
        ("Content-Transfer-Encoding", "base64"),
    )
    got = wire.decode_csrattrs(base64.b64decode(response.body))
    assert set(got) == set(wire.decode_csrattrs(base64.b64decode(RFC8951_CSRATTRS)))
    assert base64.b64decode(response.body) == base64.b64decode(RFC8951_CSRATTRS)


def test_csrattrs_lists_challenge_password_when_linking_is_required(service: EstService) -> None:
    got = wire.decode_csrattrs(base64.b64decode(service.handle(get("pop/csrattrs"), ANON).body))
    assert set(got) == {oids.CHALLENGE_PASSWORD.dotted_string, oids.ECDSA_WITH_SHA384.dotted_string}
    only = service.handle(get("popempty/csrattrs"), ANON)
    assert only.status == 200
    assert base64.b64decode(only.body) == base64.b64decode("MAsGCSqGSIb3DQEJBw==")


# --- proof-of-possession linking (RFC 7030 §3.5) ---


def test_linking_required(service: EstService, key: ec.EllipticCurvePrivateKey) -> None:
    def request(challenge: str | None) -> HttpRequest:
        return HttpRequest(
            "POST",
            f"{EST}/pop/simpleenroll",
            (("content-type", "application/pkcs10"), basic("alice", "alice-pw")),
            csr_body(key, "alice", challenge=challenge),
        )

    issued(service.handle(request(base64.b64encode(TLS_UNIQUE).decode()), ANON))
    err = raises(service, request(None), ANON, InvalidCsr)
    assert "RFC 7030 §3.5" in err.detail
    err = raises(service, request(base64.b64encode(bytes(12)).decode()), ANON, InvalidCsr)
    assert "does not match" in err.detail
    tls13 = PeerIdentity("192.0.2.40:1", TlsInfo("TLS1.3", "TLS_AES_128_GCM_SHA256"))
    err = raises(service, request(base64.b64encode(TLS_UNIQUE).decode()), tls13, InvalidCsr)
    assert "needs TLS 1.2" in err.detail


# --- /serverkeygen ---


def test_serverkeygen(
    service: EstService, ledger: SqliteLedger, key: ec.EllipticCurvePrivateKey
) -> None:
    response = service.handle(
        post("serverkeygen", csr_body(key, "alice"), basic("alice", "alice-pw")), ANON
    )
    assert response.status == 200
    content_type = response.header("Content-Type")
    assert content_type is not None and content_type.startswith("multipart/mixed; boundary=")
    parts = wire.parse_multipart(content_type, response.body)
    assert [headers for headers, _ in parts] == [
        {"content-type": "application/pkcs8", "content-transfer-encoding": "base64"},
        {
            "content-type": "application/pkcs7-mime; smime-type=certs-only",
            "content-transfer-encoding": "base64",
        },
    ]
    private_key = serialization.load_der_private_key(base64.b64decode(parts[0][1]), None)
    [cert] = wire.decode_certs_only(parts[1][1])
    assert spki(cert.public_key()) == spki(private_key.public_key())
    assert spki(cert.public_key()) != spki(key.public_key())  # §4.4.1: the CSR key is ignored
    row = ledger.get(cert.serial_number)
    assert row is not None and row.server_generated_key and row.operation == "serverkeygen"


def test_serverkeygen_refusals(service: EstService, key: ec.EllipticCurvePrivateKey) -> None:
    raises(service, post("serverkeygen", csr_body(key, "alice")), ANON, AuthenticationRequired)
    disabled = HttpRequest(
        "POST",
        f"{EST}/nokeygen/serverkeygen",
        (("content-type", "application/pkcs10"), basic("alice", "alice-pw")),
        csr_body(key, "alice"),
    )
    err = raises(service, disabled, ANON, NotImplementedOperation)
    assert err.status == 501 and "disabled" in err.detail
    for oid in (oids.DECRYPT_KEY_IDENTIFIER, oids.ASYMMETRIC_DECRYPT_KEY_IDENTIFIER):
        body = base64.b64encode(csr_der(key, "alice", attributes=[(oid, b"\x01\x02")]))
        err = raises(
            service,
            post("serverkeygen", body, basic("alice", "alice-pw")),
            ANON,
            NotImplementedOperation,
        )
        # Without a signing identity (`key_signer`) the service cannot seal a key.
        assert err.detail == "encrypted key return is not configured on this server"


# --- error rendering ---


def test_error_response_is_one_plain_line() -> None:
    response = error_response(MethodNotAllowed("use GET\r\nX-Injected: 1", allowed=("GET",)))
    assert response.status == 405
    assert response.headers == (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Allow", "GET"),
    )
    assert response.body == b"Method Not Allowed: use GET X-Injected: 1\n"
    assert error_response(NotFound()).body == b"Not Found\n"


def test_every_refusal_renders_as_short_plain_text(
    service: EstService, key: ec.EllipticCurvePrivateKey
) -> None:
    requests = [
        get("nolabel/cacerts"),
        HttpRequest("DELETE", f"{EST}/cacerts", ()),
        post("simpleenroll", csr_body(key, "alice")),
        post("simpleenroll", b"\x30\x03\x02\x01\x00", basic("alice", "alice-pw")),
        post(
            "simpleenroll", csr_body(key, "alice"), basic("alice", "alice-pw"), content_type="a/b"
        ),
        post("simpleenroll", csr_body(key, "eve"), basic("alice", "alice-pw")),
        post("simplereenroll", csr_body(key, "alice")),
        post("fullcmc", b""),
    ]
    statuses = []
    for request in requests:
        with pytest.raises(EstError) as info:
            service.handle(request, ANON)
        response = error_response(info.value)
        statuses.append(response.status)
        assert response.header("Content-Type") == "text/plain; charset=utf-8"
        text = response.body.decode("utf-8")
        assert text.endswith("\n") and text.count("\n") == 1 and len(text) < 300
        assert "Traceback" not in text and "<" not in text
    assert statuses == [404, 405, 401, 400, 415, 403, 403, 501]


def test_bad_csrattrs_spec_fails_at_start(
    ca: CertificateAuthority, ledger: SqliteLedger, users_path: Path, clock: FakeClock
) -> None:
    with pytest.raises(ValueError, match="CA label 'bad': csrattrs"):
        EstService(
            labels={"bad": LabelConfig(name="bad", csrattrs="noSuchAttribute")},
            ca=ca,
            ledger=ledger,
            users=None,
            limiter=LoginLimiter(MemoryCounters(clock=clock), Limits()),
            realm=REALM,
        )
