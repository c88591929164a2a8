"""The metrics listener and /healthz against a real server: real TLS clients, then a scrape.

The server is built as `python-est serve` builds it with `[metrics] enabled = yes`
(`ProcessMetrics` + `build_server(metrics=...)`); the listener takes a free port.
"""

from __future__ import annotations

import signal
import socket
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from est_harness import (
    TEST_CFG,
    basic,
    build_request,
    csr_body,
    daemon,
    https,
    make_csr,
    merge_config,
    prepare_state,
    srp,
)
from python_est.app import build_server
from python_est.app.metrics import ProcessMetrics, start_metrics_listener
from python_est.ca import certificate_pem
from python_est.config import Config, load_config
from python_est.errors import ConfigError
from python_est.server import EstServer
from python_est.state import State, open_state

pytestmark = pytest.mark.integration

PASSWORD = "metrics password"
METRICS_CFG = "[metrics]\nenabled = yes\naddress = 127.0.0.1\nport = 0\n[label:iot]\n"


@dataclass
class MeteredServer:
    server: EstServer
    config: Config
    state: State
    meter: ProcessMetrics
    ca_file: Path
    metrics_port: int

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def scrape(self) -> Samples:
        return scrape(self.metrics_port)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        assert reply.status == 200
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.fixture
def metered(tmp_path: Path) -> Iterator[MeteredServer]:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(merge_config(TEST_CFG, METRICS_CFG))
    config = load_config(cfg)
    state = open_state(config, create=True)
    meter = ProcessMetrics()
    meter.start(config)
    assert meter.metrics is not None
    server = build_server(config, state, metrics=meter.metrics)
    thread = server.start_in_thread()
    ca_file = tmp_path / "trust.pem"
    ca_file.write_bytes(certificate_pem(state.ca.root))
    assert state.users is not None
    state.users.add("device-1", PASSWORD)
    assert meter.port is not None and meter.port > 0
    try:
        yield MeteredServer(server, config, state, meter, ca_file, meter.port)
    finally:
        server.shutdown(grace=2.0)
        thread.join(timeout=5)
        meter.close()
        state.ledger.close()


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def enroll(metered: MeteredServer, path: str, password: str) -> int:
    return enroll_at(metered.port, metered.ca_file, path, password)


def enroll_at(port: int, ca_file: Path, path: str, password: str) -> int:
    csr, _ = make_csr("device-1")
    request = build_request(
        "POST",
        path,
        csr_body(csr),
        {"Content-Type": "application/pkcs10", "Authorization": basic("device-1", password)},
        port,
    )
    return https(port, request, cafile=ca_file).status


def test_scrape_shows_connections_handshakes_requests_and_issuance(
    metered: MeteredServer,
) -> None:
    get = build_request("GET", "/.well-known/est/cacerts", port=metered.port)
    assert https(metered.port, get, cafile=metered.ca_file).status == 200
    assert enroll(metered, "/.well-known/est/simpleenroll", PASSWORD) == 200
    assert enroll(metered, "/.well-known/est/iot/simpleenroll", PASSWORD) == 200
    assert enroll(metered, "/.well-known/est/simpleenroll", "wrong password") == 401
    csr, _ = make_csr("device-1")
    srp_request = build_request(
        "POST",
        "/.well-known/est/iot/simpleenroll",
        csr_body(csr),
        {"Content-Type": "application/pkcs10"},
        metered.port,
    )
    assert srp(metered.port, "device-1", PASSWORD, srp_request).status == 200
    health = https(
        metered.port, build_request("GET", "/healthz", port=metered.port), cafile=metered.ca_file
    )
    assert (health.status, health.body) == (200, b"ok\n")
    with socket.create_connection(("127.0.0.1", metered.port), timeout=10) as raw:
        raw.sendall(b"GET / HTTP/1.1\r\n\r\n")  # not TLS: the handshake fails
        raw.recv(1024)

    # The server counts a connection after it has closed it, so give it a moment.
    deadline = time.monotonic() + 10
    while True:
        samples = metered.scrape()
        connections = sum(
            value(samples, "python_est_connections_total", result=result)
            for result in ("responded", "no_response", "handshake_failed")
        )
        if connections >= 7 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value(samples, "python_est_connections_total", result="responded") == 6
    assert value(samples, "python_est_connections_total", result="handshake_failed") == 1
    assert value(samples, "python_est_handshakes_total", result="ok", auth="none") == 5
    assert value(samples, "python_est_handshakes_total", result="ok", auth="srp") == 1
    assert value(samples, "python_est_handshakes_total", result="failed", auth="unknown") == 1

    def requests(operation: str, label: str, status: str) -> float:
        return value(
            samples,
            "python_est_requests_total",
            operation=operation,
            label=label,
            status=status,
        )

    assert requests("cacerts", "", "200") == 1
    assert requests("simpleenroll", "", "200") == 1
    assert requests("simpleenroll", "", "401") == 1
    assert requests("simpleenroll", "iot", "200") == 2
    assert requests("healthz", "", "200") == 1
    count = value(
        samples,
        "python_est_request_duration_seconds_count",
        operation="simpleenroll",
        label="iot",
    )
    assert count == 2
    issued = value(
        samples, "python_est_certificates_issued_total", label="iot", operation="simpleenroll"
    )
    assert issued == 2
    assert (
        value(samples, "python_est_certificates_issued_total", label="", operation="simpleenroll")
        == 1
    )
    assert value(samples, "python_est_process_open_fds") > 0


def test_healthz_is_503_when_the_ledger_cannot_commit(metered: MeteredServer) -> None:
    metered.state.ledger.close()
    request = build_request("GET", "/healthz", port=metered.port)
    reply = https(metered.port, request, cafile=metered.ca_file)
    assert reply.status == 503
    assert reply.body == b"unavailable: ledger\n"
    assert reply.headers["Retry-After"] == "30"


def test_a_taken_metrics_port_stops_start_up_with_the_key_named(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        cfg = tmp_path / "est.cfg"
        cfg.write_text(merge_config(TEST_CFG, f"[metrics]\nenabled = yes\nport = {port}\n"))
        with pytest.raises(ConfigError, match=r"\[metrics\] port: cannot listen"):
            start_metrics_listener(load_config(cfg))


def test_disabled_metrics_start_nothing(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(TEST_CFG)
    assert start_metrics_listener(load_config(cfg)) is None


def test_the_daemon_serves_metrics_and_keeps_counting_across_a_reload(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        metrics_port = probe.getsockname()[1]
    extra = f"[metrics]\nenabled = yes\nport = {metrics_port}\n"
    prepare_state(tmp_path, extra, users={"device-1": PASSWORD})
    with daemon(tmp_path, extra, notify=False) as running:
        ca_file = tmp_path / "state" / "ca" / "ca.pem"
        path = "/.well-known/est/simpleenroll"
        assert enroll_at(running.port, ca_file, path, PASSWORD) == 200
        running.send(signal.SIGHUP)
        running.wait_for("reloaded the configuration")
        # The new generation's ledger wrapper counts into the same registry.
        assert enroll_at(running.port, ca_file, path, PASSWORD) == 200
        deadline = time.monotonic() + 10
        while True:
            samples = scrape(metrics_port)
            enrolled = value(
                samples,
                "python_est_requests_total",
                operation="simpleenroll",
                label="",
                status="200",
            )
            if enrolled >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert enrolled == 2
        issued = value(
            samples, "python_est_certificates_issued_total", label="", operation="simpleenroll"
        )
        assert issued == 2
        assert running.stop() == 0
