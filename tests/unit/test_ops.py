"""The health check and the operational endpoints (/healthz, the CRL path), without sockets."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from python_est.ca import CaMaterial, CertificateAuthority, crl_number
from python_est.errors import MethodNotAllowed
from python_est.keys import KeyType
from python_est.ledger import SqliteLedger
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.ops import PKIX_CRL, HealthCheck, OpsEndpoints
from python_est.ops.revocation import CrlPublisher
from python_est.policy import PeerIdentity, TlsInfo
from python_est.routes import OTHER, Handler, Route, RoutingTable
from python_est.users import UserStore

PEER = PeerIdentity(address="127.0.0.1", tls=TlsInfo("TLS1.2", "TLS_ECDHE_ECDSA_X"))


class Ticks:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=[KeyType.EC_P256, KeyType.RSA_2048])
def ca(request: pytest.FixtureRequest) -> CertificateAuthority:
    return CertificateAuthority.create_root(
        common_name="Health CA", key_type=request.param, validity_days=30
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[SqliteLedger]:
    with SqliteLedger(tmp_path / "ledger.sqlite3") as opened:
        yield opened


@pytest.fixture
def users(tmp_path: Path) -> UserStore:
    return UserStore.create(tmp_path / "users.srp", reload_interval=None)


def test_healthy_when_ca_ledger_and_users_work(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    report = HealthCheck(ca, ledger, users).report()
    assert report.ok and report.failing == ()


def test_a_closed_ledger_fails_the_check(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    ledger.close()
    assert HealthCheck(ca, ledger, users).report().failing == ("ledger",)


def test_a_read_only_ledger_fails_the_check(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    with SqliteLedger(tmp_path / "ledger.sqlite3", read_only=True) as read_only:
        assert HealthCheck(ca, read_only, None).report().failing == ("ledger",)


def test_a_broken_or_missing_user_store_fails_the_check(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    users.path.write_text("not a user store")
    ticks = Ticks()
    check = HealthCheck(ca, ledger, users, monotonic=ticks)
    assert check.report().failing == ("user store",)
    users.path.unlink()
    ticks.now += 10
    assert check.report().failing == ("user store",)


def test_without_srp_the_user_store_is_not_checked(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    assert HealthCheck(ca, ledger, None).report().ok


def test_an_expired_ca_fails_the_check(ca: CertificateAuthority, ledger: SqliteLedger) -> None:
    later = ca.certificate.not_valid_after_utc + timedelta(seconds=1)
    report = HealthCheck(ca, ledger, None, clock=lambda: later).report()
    assert report.failing == ("CA",)


def test_a_ca_key_that_does_not_match_fails_the_check(ledger: SqliteLedger) -> None:
    real = CertificateAuthority.create_root(
        common_name="EC CA", key_type=KeyType.EC_P256, validity_days=30
    )
    wrong_key = ec.generate_private_key(ec.SECP256R1())
    broken = CertificateAuthority(
        CaMaterial(certificate=real.certificate, private_key=wrong_key, chain=real.chain)
    )
    assert HealthCheck(broken, ledger, None).report().failing == ("CA",)


def test_all_failing_parts_are_named_and_results_are_cached(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    ticks = Ticks()
    now = datetime.now(timezone.utc)
    moment = {"now": now}
    check = HealthCheck(
        ca, ledger, users, cache_seconds=5, monotonic=ticks, clock=lambda: moment["now"]
    )
    assert check.report().ok
    ledger.close()
    users.path.unlink()
    moment["now"] = ca.certificate.not_valid_after_utc + timedelta(days=1)
    ticks.now += 4.9
    assert check.report().ok  # cached
    ticks.now += 0.1
    assert check.report().failing == ("CA", "ledger", "user store")


# --- OpsEndpoints ----------------------------------------------------------------------------


def get(path: str, method: str = "GET") -> HttpRequest:
    return HttpRequest(method=method, target=path, headers=(("host", "est"),))


def routed(ops: OpsEndpoints, fallback: Handler) -> RoutingTable:
    """The ops routes in a table whose every other path goes to `fallback` (as the app's)."""
    table = RoutingTable(lambda request: Route(OTHER, fallback, ops.refresh_crl))
    ops.add_routes(table)
    return table


class Fallback:
    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        self.paths.append(request.path)
        return text_response(404, "not here")


def test_healthz_is_200_ok_when_healthy(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    fallback = Fallback()
    handler = routed(OpsEndpoints(HealthCheck(ca, ledger, users), None), fallback)
    response = handler(get("/healthz"), PEER)
    assert response.status == 200
    assert response.body == b"ok\n"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
    assert fallback.paths == []


def test_healthz_is_503_with_retry_after_naming_the_failure(
    ca: CertificateAuthority, ledger: SqliteLedger, users: UserStore
) -> None:
    ledger.close()
    handler = routed(OpsEndpoints(HealthCheck(ca, ledger, users), None), Fallback())
    response = handler(get("/healthz?verbose=1"), PEER)
    assert response.status == 503
    assert response.body == b"unavailable: ledger\n"
    assert response.header("Retry-After") == "30"


def test_ops_paths_accept_only_get(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    crl = CrlPublisher(ca, ledger, tmp_path / "ca.crl", validity_hours=24)
    handler = routed(OpsEndpoints(HealthCheck(ca, ledger, None), crl), Fallback())
    for path in ("/healthz", "/crl/ca.crl"):
        with pytest.raises(MethodNotAllowed) as info:
            handler(get(path, "POST"), PEER)
        assert info.value.status == 405
        assert ("Allow", "GET") in info.value.headers()


def test_crl_path_serves_the_der_crl(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    crl = CrlPublisher(ca, ledger, tmp_path / "ca.crl", validity_hours=24)
    fallback = Fallback()
    ops = OpsEndpoints(HealthCheck(ca, ledger, None), crl, crl_path="/pki/est.crl")
    handler = routed(ops, fallback)
    response = handler(get("/pki/est.crl"), PEER)
    assert response.status == 200
    assert response.header("Content-Type") == PKIX_CRL == "application/pkix-crl"
    served = x509.load_der_x509_crl(response.body)
    assert served.issuer == ca.certificate.subject
    assert crl_number(served) == 1
    assert handler(get("/crl/ca.crl"), PEER).status == 404
    assert fallback.paths == ["/crl/ca.crl"]


def test_without_a_publisher_the_crl_path_falls_through(
    ca: CertificateAuthority, ledger: SqliteLedger
) -> None:
    fallback = Fallback()
    handler = routed(OpsEndpoints(HealthCheck(ca, ledger, None), None), fallback)
    assert handler(get("/crl/ca.crl"), PEER).status == 404
    assert handler(get("/.well-known/est/cacerts"), PEER).status == 404
    assert fallback.paths == ["/crl/ca.crl", "/.well-known/est/cacerts"]


def test_any_request_refreshes_a_due_crl(
    ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    moment = {"now": datetime.now(timezone.utc)}
    path = tmp_path / "ca.crl"
    crl = CrlPublisher(ca, ledger, path, validity_hours=2, clock=lambda: moment["now"])
    ops = OpsEndpoints(HealthCheck(ca, ledger, None), crl)
    ops.refresh_crl()
    assert crl_number(x509.load_der_x509_crl(path.read_bytes())) == 1
    handler = routed(ops, Fallback())
    handler(get("/.well-known/est/cacerts"), PEER)
    assert crl_number(x509.load_der_x509_crl(path.read_bytes())) == 1
    moment["now"] += timedelta(hours=1)
    handler(get("/.well-known/est/cacerts"), PEER)
    assert crl_number(x509.load_der_x509_crl(path.read_bytes())) == 2
