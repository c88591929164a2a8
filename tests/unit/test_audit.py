"""Audit lines (logger `python_est.audit`), pinned exactly: operators grep them.

`audit` itself is checked first. Then each kind of event is produced by its real call site
(issuance, the approval queue, a refusal in the server, an operator command) and checked twice:
the plain message, byte for byte, and the JSON object's keys in order with their values.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est import wire
from python_est.audit import audit
from python_est.cli.logs import JsonFormatter, audit_operator_action
from python_est.config import Config, LabelConfig, load_config
from python_est.errors import Forbidden
from python_est.ledger import serial_hex
from python_est.messages import HttpRequest, HttpResponse
from python_est.policy import PeerIdentity, TlsInfo
from python_est.ratelimit import Limits, LoginLimiter, MemoryCounters
from python_est.server.outcome import audit_refusal
from python_est.service import EstService
from python_est.state import State, open_state
from tests.conftest import captured_records

EST = "/.well-known/est"
TLS12 = TlsInfo("TLS1.2", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", tls_unique=bytes(12))
ANON = PeerIdentity("192.0.2.10:40000", TLS12)
LABELS = {
    "": LabelConfig(password_subjects="any"),
    "held": LabelConfig(name="held", approval="manual", password_subjects="any"),
}
# What every JSON line starts with, before the event's own fields.
COMMON = ["time", "level", "logger", "pid", "message"]
ABOUT = ["event", "result", "serial", "subject", "requester", "auth", "label"]


@pytest.fixture
def audit_records() -> Iterator[list[logging.LogRecord]]:
    with captured_records("python_est.audit", logging.INFO) as records:
        yield records


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "est.cfg"
    path.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    return load_config(path)


@pytest.fixture
def state(config: Config) -> State:
    state = open_state(config, create=True)
    assert state.users is not None
    state.users.add("alice", "alice-pw")
    return state


@pytest.fixture
def service(state: State) -> EstService:
    return EstService(
        labels=LABELS,
        ca=state.ca,
        ledger=state.ledger,
        users=state.users,
        limiter=LoginLimiter(MemoryCounters(), Limits()),
        realm="test",
    )


def enroll(label: str, key: ec.EllipticCurvePrivateKey) -> HttpRequest:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dev 1")]))
        .sign(key, hashes.SHA256())
    )
    token = base64.b64encode(b"alice:alice-pw").decode()
    headers = (("content-type", "application/pkcs10"), ("authorization", f"Basic {token}"))
    body = base64.encodebytes(csr.public_bytes(serialization.Encoding.DER))
    path = f"{EST}/{label}/simpleenroll" if label else f"{EST}/simpleenroll"
    return HttpRequest("POST", path, headers, body)


def issued_serial(response: HttpResponse) -> str:
    assert response.status == 200
    [cert] = wire.decode_certs_only(response.body)
    return serial_hex(cert.serial_number)


def as_json(made: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = json.loads(JsonFormatter().format(made))
    assert fields["logger"] == "python_est.audit" and fields["level"] == "info"
    assert fields["message"] == made.getMessage()
    return fields


def test_a_summary_follows_event_and_result_and_the_facts_go_to_json(
    audit_records: list[logging.LogRecord],
) -> None:
    audit("enroll", "refused", "status=%d who=%r", 403, "100% sure", status=403, who="x", none=None)
    [made] = audit_records
    assert made.getMessage() == "enroll refused status=403 who='100% sure'"
    fields = as_json(made)
    assert list(fields) == [*COMMON, "event", "result", "status", "who", "none"]
    assert [fields[k] for k in list(fields)[5:]] == ["enroll", "refused", 403, "x", None]


def test_without_a_summary_the_line_shows_the_result_and_every_fact(
    audit_records: list[logging.LogRecord],
) -> None:
    audit("revoke", "revoked", serial="7F", subject="CN=a%sb", reason=None)
    [made] = audit_records
    assert made.getMessage() == "revoke result='revoked' serial='7F' subject='CN=a%sb' reason=None"
    assert list(as_json(made))[5:] == ["event", "result", "serial", "subject", "reason"]


def test_issued(service: EstService, audit_records: list[logging.LogRecord]) -> None:
    response = service.handle(enroll("", ec.generate_private_key(ec.SECP256R1())), ANON)
    serial = issued_serial(response)
    [made] = audit_records
    assert made.getMessage() == (
        f"enroll issued serial={serial} subject='CN=dev 1' requester='alice' auth=basic"
        " label='' operation=simpleenroll"
    )
    fields = as_json(made)
    assert list(fields) == [*COMMON, *ABOUT]
    assert [fields[k] for k in ("event", "result", "serial", "subject", "requester")] == [
        "enroll",
        "issued",
        serial,
        "CN=dev 1",
        "alice",
    ]
    assert (fields["auth"], fields["label"]) == ("basic", "")


def test_held_then_fulfilled(
    service: EstService, state: State, audit_records: list[logging.LogRecord]
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert service.handle(enroll("held", key), ANON).status == 202
    [held] = audit_records
    [pending] = state.ledger.list_pending()
    assert held.getMessage() == (
        f"enroll held id={pending.id} subject='CN=dev 1' requester='alice' auth=basic"
        " label='held' operation=simpleenroll"
    )
    fields = as_json(held)
    assert list(fields) == [*COMMON, *ABOUT, "request"]
    assert [fields[k] for k in list(fields)[5:]] == [
        "enroll",
        "held",
        None,
        "CN=dev 1",
        "alice",
        "basic",
        "held",
        pending.id,
    ]

    state.ledger.decide_pending(pending.id, approve=True)
    response = service.handle(enroll("held", key), ANON)
    serial = issued_serial(response)
    issued, fulfilled = audit_records[1:]
    assert issued.getMessage() == (
        f"enroll issued serial={serial} subject='CN=dev 1' requester='alice' auth=basic"
        " label='held' operation=simpleenroll"
    )
    assert fulfilled.getMessage() == (
        f"enroll fulfilled id={pending.id} serial={serial} label='held' operation=simpleenroll"
    )
    fields = as_json(fulfilled)
    assert list(fields) == [*COMMON, *ABOUT, "request"]
    assert [fields[k] for k in list(fields)[5:]] == [
        "enroll",
        "fulfilled",
        serial,
        "CN=dev 1",
        "alice",
        "basic",
        "held",
        pending.id,
    ]


def test_refused(audit_records: list[logging.LogRecord]) -> None:
    token = base64.b64encode(b"mallory:guess").decode()
    request = HttpRequest(
        "POST", f"{EST}/iot/simpleenroll", (("authorization", f"Basic {token}"),), b""
    )
    audit_refusal(request, ANON, Forbidden("not  allowed\nhere"))
    [made] = audit_records
    assert made.getMessage() == (
        "enroll refused status=403 requester='mallory' auth=basic label='iot'"
        " reason='not allowed here'"
    )
    fields = as_json(made)
    assert list(fields)[5:] == [
        "event",
        "result",
        "status",
        "serial",
        "subject",
        "requester",
        "auth",
        "label",
        "reason",
    ]
    assert [fields[k] for k in list(fields)[5:]] == [
        "enroll",
        "refused",
        403,
        None,
        None,
        "mallory",
        "basic",
        "iot",
        "not allowed here",
    ]


def test_operator_action(
    audit_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGNAME", "op")
    monkeypatch.delenv("SUDO_USER", raising=False)
    audit_operator_action(
        "reject",
        "rejected",
        serial=None,
        subject="CN=dev 1",
        requester="alice",
        auth="basic",
        label="held",
        request="r1",
        reason="unknown",
    )
    [made] = audit_records
    assert made.getMessage() == (
        "reject result='rejected' serial=None subject='CN=dev 1' requester='alice'"
        " auth='basic' label='held' operator='op' request='r1' reason='unknown'"
    )
    fields = as_json(made)
    assert list(fields)[5:] == [
        "event",
        "result",
        "serial",
        "subject",
        "requester",
        "auth",
        "label",
        "operator",
        "request",
        "reason",
    ]
    assert [fields[k] for k in list(fields)[5:]] == [
        "reject",
        "rejected",
        None,
        "CN=dev 1",
        "alice",
        "basic",
        "held",
        "op",
        "r1",
        "unknown",
    ]
