"""Labels as deployments spell them (`ca:1`, `ops@site`) over real TLS, and hostile ones refused.

RFC 7030 §3.2.2 makes a label one RFC 3986 path segment. Driven by Python's ssl with raw
requests (exact targets, no client-side normalisation), curl and the python-est client.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest
from cryptography import x509

from est_harness import RunningServer, basic, build_request, csr_body, https, make_csr
from python_est.client import Credentials, EstClient, Password, Trust, build_csr, new_key
from python_est.keys import KeyType
from tests.conftest import require_tool

USER, PASSWORD = "label-user", "label-password-1"
CONFIG = "[label:ca:1]\nvalidity_days = 7\n[label:ops@site;v=2]\nvalidity_days = 9\n"


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def get(server: RunningServer, target: str) -> tuple[int, bytes]:
    reply = https(
        server.port, build_request("GET", target, port=server.port), cafile=server.ca_file
    )
    return reply.status, reply.body


def enroll(server: RunningServer, target: str) -> x509.Certificate:
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    request = build_request("POST", target, csr_body(csr), headers, server.port)
    reply = https(server.port, request, cafile=server.ca_file)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    return cert


def days(cert: x509.Certificate) -> int:
    return (cert.not_valid_after_utc - cert.not_valid_before_utc).days


@pytest.mark.parametrize(
    ("segment", "label", "validity"),
    [("ca:1", "ca:1", 7), ("ca%3A1", "ca:1", 7), ("ops@site;v=2", "ops@site;v=2", 9)],
)
def test_enroll_under_a_label_with_segment_characters(
    server: RunningServer, segment: str, label: str, validity: int
) -> None:
    assert get(server, f"/.well-known/est/{segment}/cacerts")[0] == 200
    cert = enroll(server, f"/.well-known/est/{segment}/simpleenroll")
    assert days(cert) == validity
    entry = server.state.ledger.get(cert.serial_number)
    assert entry is not None and entry.label == label


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        ("..", "dot segment"),
        ("%2E%2E", "dot segment"),
        ("%2F", "slash"),
        ("ca%2F1", "slash"),
        ("cacerts", "operation name"),
        ("%73impleenroll", "operation name"),
        ("ca%201", "white space"),
        ("ca:2", "unknown CA label"),
    ],
)
def test_hostile_or_unknown_labels_get_404_and_a_reason(
    server: RunningServer, segment: str, reason: str
) -> None:
    status, body = get(server, f"/.well-known/est/{segment}/cacerts")
    assert status == 404 and reason in body.decode()
    assert server.state.ledger.list_certificates() == []


def test_curl_and_the_python_est_client_reach_ca_1(server: RunningServer) -> None:
    require_tool("curl")
    result = subprocess.run(
        [
            *("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}"),
            *("--cacert", str(server.ca_file), server.url("/.well-known/est/ca:1/cacerts")),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (0, "200"), result.stderr
    client = EstClient(
        "127.0.0.1",
        server.port,
        label="ca:1",
        trust=Trust(tuple(server.state.ca.chain)),
        credentials=Credentials(basic=Password(USER, PASSWORD)),
        timeout=10,
    )
    cert = client.simpleenroll(build_csr(new_key(KeyType.EC_P256), common_name=USER))
    assert days(cert) == 7
