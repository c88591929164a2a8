"""The routing table the app serves (`python_est.app.routing_table`): path → route and tag."""

from __future__ import annotations

from pathlib import Path

import pytest

from python_est.app import routing_table
from python_est.bootstrap import BootstrapPage
from python_est.ca import CertificateAuthority
from python_est.config import LabelConfig
from python_est.errors import MethodNotAllowed, NotFound
from python_est.keys import KeyType
from python_est.ledger import SqliteLedger
from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.ops import HealthCheck, OpsEndpoints
from python_est.ops.revocation import CrlPublisher
from python_est.policy import PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.routes import OTHER, Route, RouteTag, RoutingTable
from python_est.service import EstService

PEER = PeerIdentity("192.0.2.40:50000", TlsInfo("TLS1.2", "TLS_AES_128_GCM_SHA256"))


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(
        common_name="Routes Test CA", key_type=KeyType.EC_P256, validity_days=30
    )


@pytest.fixture
def ledger(tmp_path: Path) -> SqliteLedger:
    return SqliteLedger(tmp_path / "ledger.sqlite3")


@pytest.fixture
def service(ca: CertificateAuthority, ledger: SqliteLedger) -> EstService:
    return EstService(
        labels={"": LabelConfig(), "iot": LabelConfig(name="iot")},
        ca=ca,
        ledger=ledger,
        users=None,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
    )


def ops(ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path) -> OpsEndpoints:
    crl = CrlPublisher(ca, ledger, tmp_path / "ca.crl", validity_hours=24)
    return OpsEndpoints(HealthCheck(ca, ledger, None), crl)


@pytest.fixture
def table(
    service: EstService, ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> RoutingTable:
    page = BootstrapPage(service, path="/bootstrap")
    return routing_table(service, page, ops(ca, ledger, tmp_path))


def get(target: str, method: str = "GET") -> HttpRequest:
    return HttpRequest(method, target, ())


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/.well-known/est/cacerts", ("cacerts", "")),
        ("/.well-known/est/iot/simpleenroll", ("simpleenroll", "iot")),
        ("/.well-known/est/iot/simplereenroll?x=1", ("simplereenroll", "iot")),
        ("/.well-known/est/unknown-label/cacerts", ("other", "")),
        ("/.well-known/est/nonsense", ("other", "")),
        ("/healthz", ("healthz", "")),
        ("/healthz?verbose=1", ("healthz", "")),
        ("/crl/ca.crl", ("crl", "")),
        ("/bootstrap", ("bootstrap", "")),
        ("/favicon.ico", ("other", "")),
    ],
)
def test_every_request_is_tagged_with_bounded_values(
    table: RoutingTable, target: str, expected: tuple[str, str]
) -> None:
    assert table.resolve(get(target)).tag == RouteTag(*expected)


def test_each_path_goes_to_its_handler(table: RoutingTable) -> None:
    assert table(get("/bootstrap?x=1"), PEER).header("Content-Type") == "text/html; charset=utf-8"
    cacerts = table(get("/.well-known/est/cacerts"), PEER)
    assert cacerts.header("Content-Type") == "application/pkcs7-mime"
    assert table(get("/healthz"), PEER).body == b"ok\n"
    assert table(get("/crl/ca.crl"), PEER).header("Content-Type") == "application/pkix-crl"
    with pytest.raises(NotFound) as info:
        table(get("/bootstrap/other"), PEER)
    assert info.value.status == 404


def test_unknown_labels_and_paths_are_404_and_wrong_methods_405(table: RoutingTable) -> None:
    for target in ("/.well-known/est/unknown-label/cacerts", "/favicon.ico"):
        with pytest.raises(NotFound) as info:
            table(get(target), PEER)
        assert info.value.status == 404
    with pytest.raises(MethodNotAllowed) as refused:
        table(get("/.well-known/est/iot/simpleenroll"), PEER)
    assert refused.value.status == 405
    assert ("Allow", "POST") in refused.value.headers()


def test_a_disabled_page_is_an_unknown_path(
    service: EstService, ca: CertificateAuthority, ledger: SqliteLedger, tmp_path: Path
) -> None:
    page = BootstrapPage(service, path="/bootstrap", enabled=False)
    table = routing_table(service, page, ops(ca, ledger, tmp_path))
    assert table.resolve(get("/bootstrap")).tag == OTHER
    with pytest.raises(NotFound):
        table(get("/bootstrap"), PEER)


def answer(text: str) -> Route:
    def handler(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        return text_response(200, text)

    return Route(OTHER, handler)


def test_the_first_route_added_for_a_path_wins() -> None:
    table = RoutingTable(lambda request: answer("default"))
    table.add("/x", "first", answer("first").handler)
    table.add("/x", "second", answer("second").handler)
    assert table.resolve(get("/x")).tag == RouteTag("first")
    assert table(get("/x"), PEER).body == b"first\n"
    assert table(get("/y"), PEER).body == b"default\n"


def test_a_tree_answers_its_path_and_below_but_exact_paths_come_first() -> None:
    table = RoutingTable(lambda request: answer("default"))
    table.add_tree("/ocsp", "ocsp", answer("tree").handler)
    table.add("/ocsp/exact", "exact", answer("exact").handler)
    for path in ("/ocsp", "/ocsp/", "/ocsp/MEIw%2Fab", "/ocsp/a/b/c?x=1"):
        assert table.resolve(get(path)).tag == RouteTag("ocsp"), path
    assert table(get("/ocsp/exact"), PEER).body == b"exact\n"
    for path in ("/ocspx", "/ocs", "/x/ocsp/"):
        assert table(get(path), PEER).body == b"default\n", path


def test_then_runs_after_the_handler_even_when_it_refuses() -> None:
    ran: list[str] = []

    def refuse(request: HttpRequest, peer: PeerIdentity) -> HttpResponse:
        raise NotFound("no")

    route = Route(OTHER, refuse, lambda: ran.append("then"))
    with pytest.raises(NotFound):
        route(get("/"), PEER)
    assert ran == ["then"]


def test_a_plain_handler_is_a_table_of_one_route_tagged_other() -> None:
    table = RoutingTable.single(answer("only").handler)
    assert table.resolve(get("/anything")).tag == OTHER
    assert table(get("/.well-known/est/cacerts"), PEER).body == b"only\n"
