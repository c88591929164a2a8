"""Metrics: the registry and the connection observer (routes tag requests: test_routes)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from python_est.ca import CertificateAuthority
from python_est.keys import KeyType
from python_est.ops import ConnectionMetrics, auth_kind
from python_est.ops.metrics import Metrics
from python_est.policy import ClientCertificate, PeerIdentity, TlsInfo
from python_est.routes import RouteTag

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
    tag: RouteTag | None = None
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


def test_the_observer_counts_each_kind_of_connection(cert: x509.Certificate) -> None:
    metrics = Metrics(process=False)
    observer = ConnectionMetrics(metrics)
    srp_peer = PeerIdentity("10.0.0.1", TLS, srp_user="alice")
    observer(Facts(None, handshake_seconds=0.2))  # handshake failed
    observer(Facts(srp_peer))  # handshake, then no request
    observer(Facts(srp_peer, RouteTag("simpleenroll"), 200, 0.01, 0.51))
    observer(Facts(srp_peer, None, 413))  # the request did not parse, so it has no route
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
