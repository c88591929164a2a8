"""Metrics: the registry, the connection observer's classification, and issuance counting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from python_est.ca import CertificateAuthority
from python_est.keys import KeyType
from python_est.ledger import DuplicateSerial, IssuedCertificate, SqliteLedger
from python_est.metrics import Metrics
from python_est.ops import ConnectionMetrics, auth_kind, counting_ledger
from python_est.policy import ClientCertificate, PeerIdentity, TlsInfo

TLS = TlsInfo("TLS1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")


@pytest.fixture(scope="module")
def cert() -> x509.Certificate:
    ca = CertificateAuthority.create_root(
        common_name="Metrics CA", key_type=KeyType.EC_P256, validity_days=30
    )
    return ca.issue_client_certificate(common_name="device-1")[0]


@dataclass(frozen=True)
class Facts:
    """A finished connection as the server reports it."""

    peer: PeerIdentity | None
    request: str = "-"
    status: int | None = None
    handshake_seconds: float | None = 0.01
    seconds: float = 0.05


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_metrics_count_and_render_the_prometheus_text_format() -> None:
    metrics = Metrics(process=False)
    metrics.connection("responded")
    metrics.handshake("ok", "srp", 0.02)
    metrics.request("simpleenroll", "iot", 200, 0.3)
    metrics.request("simpleenroll", "iot", 200, 0.01)
    metrics.issued("iot", "simpleenroll")
    assert sample(metrics, "python_est_connections_total", result="responded") == 1
    assert sample(metrics, "python_est_handshakes_total", result="ok", auth="srp") == 1
    labels = {"operation": "simpleenroll", "label": "iot"}
    assert sample(metrics, "python_est_requests_total", status="200", **labels) == 2
    assert sample(metrics, "python_est_request_duration_seconds_count", **labels) == 2
    assert sample(metrics, "python_est_request_duration_seconds_bucket", le="0.25", **labels) == 1
    assert sample(metrics, "python_est_request_duration_seconds_sum", **labels) == pytest.approx(
        0.31
    )
    assert (
        sample(
            metrics, "python_est_certificates_issued_total", label="iot", operation="simpleenroll"
        )
        == 1
    )
    names = {family.name for family in text_string_to_metric_families(metrics.render().decode())}
    assert {
        "python_est_connections",
        "python_est_handshakes",
        "python_est_handshake_duration_seconds",
        "python_est_requests",
        "python_est_request_duration_seconds",
        "python_est_certificates_issued",
    } <= names


def test_each_metrics_object_has_its_own_registry() -> None:
    first, second = Metrics(process=False), Metrics(process=False)
    first.connection("responded")
    assert sample(second, "python_est_connections_total", result="responded") == 0


def test_process_figures_are_exported_by_default() -> None:
    text = Metrics().render().decode()
    assert "python_est_process_cpu_seconds_total" in text


@pytest.mark.parametrize(
    ("request_line", "expected"),
    [
        ("GET /.well-known/est/cacerts", ("cacerts", "")),
        ("POST /.well-known/est/iot/simpleenroll", ("simpleenroll", "iot")),
        ("POST /.well-known/est/iot/simplereenroll?x=1", ("simplereenroll", "iot")),
        ("GET /.well-known/est/unknown-label/cacerts", ("other", "")),
        ("GET /.well-known/est/nonsense", ("other", "")),
        ("GET /healthz", ("healthz", "")),
        ("GET /crl/ca.crl", ("crl", "")),
        ("POST /bootstrap", ("bootstrap", "")),
        ("GET /favicon.ico", ("other", "")),
        ("-", ("invalid", "")),
    ],
)
def test_requests_are_classified_into_bounded_values(
    request_line: str, expected: tuple[str, str]
) -> None:
    observer = ConnectionMetrics(
        Metrics(process=False), ["", "iot"], crl_path="/crl/ca.crl", bootstrap_path="/bootstrap"
    )
    assert observer.classify(request_line) == expected


def test_the_observer_counts_each_kind_of_connection(cert: x509.Certificate) -> None:
    metrics = Metrics(process=False)
    observer = ConnectionMetrics(metrics, [""])
    srp_peer = PeerIdentity("10.0.0.1", TLS, srp_user="alice")
    observer(Facts(None, handshake_seconds=0.2))  # handshake failed
    observer(Facts(srp_peer))  # handshake, then no request
    observer(Facts(srp_peer, "POST /.well-known/est/simpleenroll", 200, 0.01, 0.51))
    observer(Facts(srp_peer, "-", 413))  # the request did not parse
    assert sample(metrics, "python_est_connections_total", result="handshake_failed") == 1
    assert sample(metrics, "python_est_connections_total", result="no_response") == 1
    assert sample(metrics, "python_est_connections_total", result="responded") == 2
    assert sample(metrics, "python_est_handshakes_total", result="failed", auth="unknown") == 1
    assert sample(metrics, "python_est_handshakes_total", result="ok", auth="srp") == 3
    assert sample(metrics, "python_est_handshake_duration_seconds_sum", result="failed") == 0.2
    enroll = {"operation": "simpleenroll", "label": ""}
    assert sample(metrics, "python_est_requests_total", status="200", **enroll) == 1
    # Request latency excludes the handshake.
    assert sample(metrics, "python_est_request_duration_seconds_sum", **enroll) == pytest.approx(
        0.5
    )
    invalid = {"operation": "invalid", "label": "", "status": "413"}
    assert sample(metrics, "python_est_requests_total", **invalid) == 1


def test_auth_kind_tells_a_rejected_certificate_from_none(cert: x509.Certificate) -> None:
    valid = ClientCertificate((cert,), valid=True)
    rejected = ClientCertificate((cert,), valid=False, reason="revoked")
    assert auth_kind(PeerIdentity("a", TLS, client_cert=valid)) == "cert"
    assert auth_kind(PeerIdentity("a", TLS, client_cert=rejected)) == "cert_rejected"
    assert auth_kind(PeerIdentity("a", TLS, srp_user="bob")) == "srp"
    assert auth_kind(PeerIdentity("a", TLS)) == "none"


def test_the_counting_ledger_counts_committed_certificates(
    cert: x509.Certificate, tmp_path: Path
) -> None:
    metrics = Metrics(process=False)
    with SqliteLedger(tmp_path / "ledger.sqlite3") as real:
        ledger = counting_ledger(real, metrics)
        entry = IssuedCertificate.from_certificate(
            cert, requester="alice", auth_method="srp", label="iot", operation="serverkeygen"
        )
        ledger.record(entry)
        with pytest.raises(DuplicateSerial):
            ledger.record(entry)  # a duplicate is not committed, so not counted
        assert ledger.get(cert.serial_number) == real.get(cert.serial_number)
        assert ledger.count() == 1
        ledger.revoke(cert.serial_number, "superseded")
        assert ledger.is_revoked(cert.serial_number)
    counted = sample(
        metrics, "python_est_certificates_issued_total", label="iot", operation="serverkeygen"
    )
    assert counted == 1
