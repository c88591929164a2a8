"""Webhooks (issue 18 item 4) as values: the URL rule, the request JSON, the answer parser, the
label config, and the notification outbox with a fake clock."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

import pytest

from python_est.config import load_config
from python_est.config.convert import to_webhook_url
from python_est.errors import ConfigError
from python_est.webhooks import (
    AuthorizationRequest,
    Decision,
    Outbox,
    Verdict,
    WebhookFailure,
    parse_decision,
)
from python_est.webhooks.outbox import MAX_ATTEMPTS


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example/authorize",
        "https://10.0.0.5:8443/a?x=1",
        "http://127.0.0.1:9000/hook",
        "http://localhost/hook",
        "http://[::1]:80/hook",
    ],
)
def test_webhook_urls_accepted(url: str) -> None:
    assert to_webhook_url(url) == url


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("http://hooks.example/authorize", "only to a loopback host"),
        ("http://127.0.0.1.example.com/", "only to a loopback host"),
        ("ftp://hooks.example/", "https://"),
        ("https://user:secret@hooks.example/", "without user"),
        ("https://hooks.example/#frag", "without user"),
        ("https://hooks.example/a b", "https://"),
        ("https:///nohost", "https://"),
        ("https://hooks.example:0/", "https://"),
    ],
)
def test_webhook_urls_refused(url: str, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        to_webhook_url(url)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"decision": "allow"}', Decision(Verdict.ALLOW)),
        (b'{"decision": "hold", "reason": "wait"}', Decision(Verdict.HOLD, "wait")),
        (b'{"decision": "deny", "reason": "a\\nb\\u202e"}', Decision(Verdict.DENY, "a\\nb\\u202e")),
    ],
)
def test_decisions_parsed(body: bytes, expected: Decision) -> None:
    assert parse_decision(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"allow",
        b"\xff\xfe",
        b'"allow"',
        b"null",
        b'["allow"]',
        b"{}",
        b'{"decision": "ALLOW"}',
        b'{"decision": ["allow"]}',
        b'{"decision": "deny", "reason": 7}',
        b'{"decision": "allow"} trailing',
    ],
)
def test_garbage_answers_are_failures(body: bytes) -> None:
    with pytest.raises(WebhookFailure):
        parse_decision(body)


def test_a_long_reason_is_cut() -> None:
    decision = parse_decision(json.dumps({"decision": "deny", "reason": "r" * 5000}).encode())
    assert len(decision.reason) == 200 and decision.reason.endswith("...")


def test_request_json_keeps_hostile_strings_as_values() -> None:
    hostile = 'a"}, "label": "x\n\u2028\x00'
    request = AuthorizationRequest(
        label="iot",
        operation="simpleenroll",
        requester=hostile,
        auth_method="basic",
        subject=hostile,
        sans=[hostile],
        key_type="ec-secp256r1",
        client_certificate=None,
        source_address="192.0.2.1",
        request_id="0123",
    )
    raw = request.to_json()
    assert raw.isascii() and b"\n" not in raw
    decoded = json.loads(raw)
    assert decoded["label"] == "iot"
    assert decoded["subject"] == decoded["requester"] == hostile
    assert decoded["sans"] == [hostile]


def _config(tmp_path: Path, keys: str) -> Path:
    path = tmp_path / "est.cfg"
    path.write_text(f"[server]\nstate_dir = state\n[label:iot]\n{keys}\n")
    return path


def test_label_webhook_keys_load_with_paths_resolved(tmp_path: Path) -> None:
    config = load_config(
        _config(
            tmp_path,
            "authorize_url = https://hooks.example/a\nnotify_url = http://127.0.0.1:9/n\n"
            "webhook_ca_file = hooks/ca.pem\nwebhook_timeout = 2.5\nwebhook_failure = open",
        )
    )
    label = config.labels["iot"]
    assert label.authorize_url == "https://hooks.example/a"
    assert label.notify_url == "http://127.0.0.1:9/n"
    assert label.webhook_ca_file == tmp_path / "hooks" / "ca.pem"
    assert label.webhook_timeout == 2.5 and label.webhook_failure == "open"
    assert config.labels[""].authorize_url == ""


@pytest.mark.parametrize(
    ("keys", "where"),
    [
        ("authorize_url = https://hooks.example/a", "[label:iot] webhook_ca_file"),
        ("notify_url = http://hooks.example/n", "[label:iot] notify_url"),
        ("webhook_client_cert = c.pem", "[label:iot] webhook_client_key"),
        ("webhook_failure = maybe", "[label:iot] webhook_failure"),
        ("webhook_timeout = 0", "[label:iot] webhook_timeout"),
    ],
)
def test_bad_webhook_keys_name_the_key(tmp_path: Path, keys: str, where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, keys))
    assert f"est.cfg: {where}:" in str(info.value)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sink:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, bytes]] = []

    def __call__(self, label: str, body: bytes) -> None:
        self.sent.append((label, body))
        if self.failures:
            self.failures -= 1
            raise WebhookFailure("the webhook answered 500, an error")


def test_outbox_retries_with_doubling_delays_then_delivers(tmp_path: Path) -> None:
    clock, sink = Clock(), Sink(failures=2)
    outbox = Outbox(tmp_path / "notify", first_delay=1.0, clock=clock)
    outbox.put("iot", b'{"event": "issued"}')
    [entry] = outbox.pending()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert outbox.deliver_due(sink) == 1.0
    assert outbox.deliver_due(sink) == 1.0  # not due yet: nothing sent
    assert len(sink.sent) == 1
    clock.now += 1.0
    assert outbox.deliver_due(sink) == 2.0
    clock.now += 2.0
    assert outbox.deliver_due(sink) is None
    assert sink.sent == [("iot", b'{"event": "issued"}')] * 3
    assert outbox.pending() == []


def test_outbox_gives_up_after_max_attempts_and_keeps_the_entry(tmp_path: Path) -> None:
    clock, sink = Clock(), Sink(failures=MAX_ATTEMPTS + 5)
    outbox = Outbox(tmp_path / "notify", first_delay=1.0, clock=clock)
    outbox.put("iot", b"{}")
    while (wait := outbox.deliver_due(sink)) is not None:
        clock.now += wait
    assert len(sink.sent) == MAX_ATTEMPTS
    assert outbox.pending() == []
    assert len(list((tmp_path / "notify" / "failed").glob("*.json"))) == 1


def test_outbox_skips_an_entry_another_process_is_sending(tmp_path: Path) -> None:
    sink = Sink(failures=0)
    outbox = Outbox(tmp_path / "notify", clock=Clock())
    outbox.put("iot", b"{}")
    [entry] = outbox.pending()
    fd = os.open(entry, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # flock locks per open file: a second process's view
        assert outbox.deliver_due(sink) is not None
        assert sink.sent == []
    finally:
        os.close(fd)
    assert outbox.deliver_due(sink) is None and len(sink.sent) == 1


def test_outbox_moves_an_unreadable_entry_aside(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "notify", clock=Clock())
    (tmp_path / "notify").mkdir()
    (tmp_path / "notify" / "0-bad.json").write_text("{not json")
    assert outbox.deliver_due(Sink(failures=0)) is None
    assert (tmp_path / "notify" / "failed" / "0-bad.json").exists()
