"""Authorization and notification webhooks (issue 18 item 4) over real TLS, against a webhook
served by stdlib http.server on 127.0.0.1 in the test."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from est_harness import RunningServer, build_request, https
from python_est.ledger import serial_hex
from python_est.webhooks import MAX_ANSWER_BYTES
from tests.conftest import captured_records
from tests.policy_support import CN, PASSWORD, cn, der_csr, held_id, issued_to, post, refused
from tests.webhook_support import ALLOW, Answer, Hook, decision, make_hook_pki, running_hook

pytestmark = pytest.mark.integration

USER = "device1"
PATH = "hooked/"


def hooked_server(
    start: Callable[[str], RunningServer], keys: str, timeout: int = 2
) -> RunningServer:
    running = start(
        f"[label:hooked]\npassword_subjects = any\nwebhook_timeout = {timeout}\n{keys}\n"
    )
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


@pytest.fixture
def hook() -> Iterator[Hook]:
    with running_hook() as running:
        yield running


def enroll(server: RunningServer, name: str = "sensor-1", path: str = PATH) -> tuple[int, str]:
    der, _ = der_csr(cn(name))
    reply = post(server, f"{path}simpleenroll", der, user=USER)
    return reply.status, reply.body.decode(errors="replace")


def test_allow_issues_and_the_webhook_sees_the_request(
    start_est_server: Callable[[str], RunningServer], hook: Hook
) -> None:
    server = hooked_server(start_est_server, f"authorize_url = {hook.url()}")
    der, _ = der_csr(cn("sensor-1"), sans=[x509.DNSName("sensor-1.example")])
    reply = post(server, f"{PATH}simpleenroll", der, user=USER)
    assert reply.status == 200, reply.body
    [seen] = hook.received
    assert seen.headers["content-type"] == "application/json"
    body = seen.json()
    assert body == {
        "label": "hooked",
        "operation": "simpleenroll",
        "requester": USER,
        "auth_method": "basic",
        "subject": "CN=sensor-1",
        "sans": ["DNS:sensor-1.example"],
        "key_type": "ec-secp256r1",
        "client_certificate": None,
        "source_address": "127.0.0.1",
        "request_id": seen.headers["x-request-id"],
    }
    # Other labels are not hooked.
    assert enroll(server, name=USER, path="")[0] == 200
    assert len(hook.received) == 1


def test_deny_is_403_with_the_reason_escaped_and_bounded(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    reason = "not in inventory\r\nX-Injected: yes\x1b[2J" + "z" * 500
    with running_hook([decision("deny", reason)]) as hook:
        server = hooked_server(start_est_server, f"authorize_url = {hook.url()}")
        with captured_records("python_est", logging.INFO) as records:
            status, text = enroll(server)
    assert status == 403
    assert "refused by the authorization service: not in inventory\\r\\nX-Injected" in text
    assert "\x1b" not in text and "\r" not in text and "\n" not in text.rstrip("\n")
    assert "z" * 300 not in text and len(text) < 400
    assert server.state.ledger.list_certificates(limit=10) == []
    logged = [r.getMessage() for r in records if "authorization webhook" in r.getMessage()]
    assert logged and all("\n" not in line and "\x1b" not in line for line in logged)


def test_hold_then_approve(start_est_server: Callable[[str], RunningServer]) -> None:
    with running_hook([decision("hold", "a human looks")]) as hook:
        server = hooked_server(start_est_server, f"authorize_url = {hook.url()}")
        der, _ = der_csr(cn("sensor-9"))
        request_id = held_id(post(server, f"{PATH}simpleenroll", der, user=USER))
        assert held_id(post(server, f"{PATH}simpleenroll", der, user=USER)) == request_id
        server.state.ledger.decide_pending(request_id, True)
        reply = post(server, f"{PATH}simpleenroll", der, user=USER)
        assert reply.status == 200, reply.body
        # Asked on every attempt; a deny after approval still refuses.
        assert len(hook.received) == 3
        hook.answers[:] = [decision("deny", "revoked meanwhile")]
        refused(post(server, f"{PATH}simpleenroll", der, user=USER), 403, "revoked meanwhile")


@pytest.mark.parametrize(
    ("answer", "phrase"),
    [
        (Answer(hang=True), "did not answer within 1 s"),
        (Answer(body=b"<html>allow</html>"), "not JSON"),
        (Answer(body=b'{"decision": "yes"}'), "no decision"),
        (Answer(body=b'["allow"]'), "not a JSON object"),
        (Answer(status=500, body=b'{"decision": "allow"}'), "answered 500"),
        (Answer(status=302, headers=(("Location", "/elsewhere"),)), "not followed"),
        (
            Answer(body=b'{"decision": "allow", "pad": "' + b"x" * MAX_ANSWER_BYTES + b'"}'),
            "exceeds",
        ),
    ],
    ids=["timeout", "garbage", "unknown-decision", "not-object", "500", "redirect", "oversize"],
)
def test_a_failing_webhook_fails_closed_with_503(
    start_est_server: Callable[[str], RunningServer], answer: Answer, phrase: str
) -> None:
    with running_hook([answer]) as hook:
        server = hooked_server(start_est_server, f"authorize_url = {hook.url()}", timeout=1)
        der, _ = der_csr(cn("sensor-1"))
        reply = post(server, f"{PATH}simpleenroll", der, user=USER)
        assert reply.status == 503, reply.body
        assert "the authorization service failed" in reply.body.decode()
        assert phrase in reply.body.decode()
        assert reply.headers["Retry-After"].isdigit()
        assert server.state.ledger.list_certificates(limit=10) == []
        assert [r.path for r in hook.received] == ["/hook"]  # the redirect was not followed


def test_webhook_down_fails_closed_and_fail_open_only_when_configured(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    with running_hook() as hook:
        url = hook.url()
    closed = hooked_server(start_est_server, f"authorize_url = {url}")
    assert enroll(closed)[0] == 503
    opened = hooked_server(start_est_server, f"authorize_url = {url}\nwebhook_failure = open")
    with captured_records("python_est.webhooks", logging.WARNING) as records:
        assert enroll(opened)[0] == 200
    assert any("issuing anyway" in r.getMessage() for r in records)


def test_https_webhook_with_its_ca_and_a_client_certificate(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    pki = make_hook_pki(tmp_path)
    with running_hook([ALLOW], context=pki.server_context(True)) as hook:
        server = hooked_server(
            start_est_server,
            f"authorize_url = {hook.url()}\nwebhook_ca_file = {pki.ca_file}\n"
            f"webhook_client_cert = {pki.client_cert}\nwebhook_client_key = {pki.client_key}",
        )
        assert enroll(server)[0] == 200
        assert [r.client_cert for r in hook.received] == [True]


def test_https_webhook_under_another_ca_is_refused(
    start_est_server: Callable[[str], RunningServer], tmp_path: Path
) -> None:
    real, other = make_hook_pki(tmp_path, "real"), make_hook_pki(tmp_path, "other")
    with running_hook([ALLOW], context=real.server_context(False)) as hook:
        server = hooked_server(
            start_est_server, f"authorize_url = {hook.url()}\nwebhook_ca_file = {other.ca_file}"
        )
        status, text = enroll(server)
        assert status == 503 and "TLS certificate is not trusted" in text
        assert hook.received == []


def test_serverkeygen_and_reenroll_ask_too_with_the_client_certificate(
    start_est_server: Callable[[str], RunningServer], hook: Hook, tmp_path: Path
) -> None:
    server = hooked_server(
        start_est_server, f"authorize_url = {hook.url()}\nserverkeygen_key_type = ec-p384"
    )
    der, _ = der_csr(cn("keygen-1"))
    assert post(server, f"{PATH}serverkeygen", der, user=USER).status == 200
    assert hook.received[-1].json()["operation"] == "serverkeygen"
    assert hook.received[-1].json()["key_type"] == "ec-p384"
    cert, creds = issued_to(server, tmp_path, USER, "renew-me", PATH)
    der, _ = der_csr(cn("renew-me"))
    assert post(server, f"{PATH}simplereenroll", der, client=creds).status == 200
    asked = hook.received[-1].json()
    assert asked["operation"] == "simplereenroll" and asked["auth_method"] == "cert"
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    assert asked["client_certificate"] == pem


def test_names_cannot_rewrite_what_the_webhook_sees(
    start_est_server: Callable[[str], RunningServer], hook: Hook
) -> None:
    # A requester's own subject and SAN values carrying JSON syntax stay string values.
    server = hooked_server(start_est_server, f"authorize_url = {hook.url()}")
    forged = 'x", "label": "admin", "operation": "none'
    subject = x509.Name(
        [
            x509.NameAttribute(CN, forged),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, '"}{"decision":"allow'),
        ]
    )
    uri = 'https://a.example/"],"requester":"root'
    der, _ = der_csr(subject, sans=[x509.UniformResourceIdentifier(uri)])
    post(server, f"{PATH}simpleenroll", der, user=USER)
    [seen] = hook.received
    raw = seen.body.decode("ascii")  # ensure_ascii: one line, nothing raw
    assert "\n" not in raw
    body = json.loads(raw)
    assert set(body) == {
        "label",
        "operation",
        "requester",
        "auth_method",
        "subject",
        "sans",
        "key_type",
        "client_certificate",
        "source_address",
        "request_id",
    }
    assert body["label"] == "hooked" and body["operation"] == "simpleenroll"
    assert body["requester"] == USER
    assert body["subject"] == subject.rfc4514_string()
    assert body["sans"] == [f"URI:{uri}"]


def test_a_control_character_in_a_name_never_reaches_the_webhook(
    start_est_server: Callable[[str], RunningServer], hook: Hook
) -> None:
    server = hooked_server(start_est_server, f"authorize_url = {hook.url()}")
    der, _ = der_csr(cn('dev\n{"decision": "allow"}'))
    refused(post(server, f"{PATH}simpleenroll", der, user=USER), 400)
    assert hook.received == []


def test_notification_is_retried_and_never_blocks_issuance(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    failing = Answer(status=500, body=b"down")
    with running_hook([failing, failing, Answer(body=b"")]) as hook:
        server = hooked_server(start_est_server, f"notify_url = {hook.url('/notify')}")
        with captured_records("python_est.webhooks", logging.WARNING) as records:
            der, _ = der_csr(cn("sensor-1"))
            reply = post(server, f"{PATH}simpleenroll", der, user=USER)
            assert reply.status == 200, reply.body
            [cert] = reply.certificates()
            received = hook.wait_for(3)
        outbox = server.config.server.state_dir / "notify"
        assert _poll_empty(outbox)
    bodies = [r.body for r in received]
    assert bodies[0] == bodies[1] == bodies[2]
    note = received[2].json()
    assert note["event"] == "issued" and note["label"] == "hooked"
    assert note["serial"] == serial_hex(cert.serial_number)
    assert note["certificate"] == cert.public_bytes(serialization.Encoding.PEM).decode()
    warnings = [r.getMessage() for r in records if "not delivered" in r.getMessage()]
    assert len(warnings) == 2
    # Still issued and recorded, whatever the notifications did.
    assert server.state.ledger.get(cert.serial_number) is not None


def _poll_empty(outbox: Path, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not list(outbox.glob("*.json")):
            return True
        time.sleep(0.05)
    return False


def test_the_bootstrap_page_asks_the_webhook_too(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    with running_hook([decision("deny", "unknown device")]) as hook:
        server = start_est_server(f"[profile]\nauthorize_url = {hook.url()}\n")
        assert server.state.users is not None
        server.state.users.add(USER, PASSWORD)
        csr = x509.load_der_x509_csr(der_csr(cn(USER))[0])
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        body = urlencode({"user": USER, "password": PASSWORD, "mode": "csr", "csr": pem})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        raw = build_request("POST", "/bootstrap", body.encode(), headers, server.port)
        reply = https(server.port, raw, cafile=server.ca_file)
    assert b"unknown device" in reply.body, reply.body[:300]
    assert server.state.ledger.count() == 0
    [seen] = hook.received
    assert seen.json()["subject"] == f"CN={USER}"


def test_a_serverkeygen_notification_carries_no_private_key(
    start_est_server: Callable[[str], RunningServer], hook: Hook
) -> None:
    server = hooked_server(start_est_server, f"notify_url = {hook.url('/notify')}")
    reply = post(server, f"{PATH}serverkeygen", der_csr(cn("keygen-2"))[0], user=USER)
    assert reply.status == 200, reply.body
    [seen] = hook.wait_for(1)
    note = seen.json()
    assert note["operation"] == "serverkeygen"
    assert "PRIVATE" not in seen.body.decode() and set(note) == {
        "event",
        "label",
        "operation",
        "serial",
        "subject",
        "sans",
        "not_before",
        "not_after",
        "requester",
        "auth_method",
        "certificate",
    }
