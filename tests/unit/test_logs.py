"""Log set-up: one line per event, plain or JSON, journald-aware, audit fields structured."""

from __future__ import annotations

import copy
import io
import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from python_est import __version__
from python_est.cli import main
from python_est.cli.logs import (
    JsonFormatter,
    audit_operator_action,
    make_formatter,
    setup_logging,
)
from python_est.config import load_config
from python_est.safetext import escape
from python_est.state import open_state
from tests.conftest import captured_records


def record(message: str = "hello %s", *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("python_est.test")
    made = logger.makeRecord(logger.name, logging.INFO, __file__, 1, message, args, None)
    made.__dict__.update(extra)
    return made


@pytest.fixture
def audit_records() -> Iterator[list[logging.LogRecord]]:
    with captured_records("python_est.audit", logging.INFO) as records:
        yield records


def test_json_has_the_basics_and_every_extra_field_on_one_line() -> None:
    line = JsonFormatter().format(
        record("two\nlines %d", 7, event="enroll", result="issued", serial="0A", status=None)
    )
    assert "\n" not in line
    event = json.loads(line)
    assert event["message"] == "two\nlines 7"
    assert (event["level"], event["logger"], event["pid"]) == (
        "info",
        "python_est.test",
        os.getpid(),
    )
    assert event["time"].endswith("+00:00")
    assert {k: event[k] for k in ("event", "result", "serial", "status")} == {
        "event": "enroll",
        "result": "issued",
        "serial": "0A",
        "status": None,
    }
    # LogRecord's own attributes stay out.
    assert not {"args", "msg", "levelno", "pathname", "thread"} & set(event)


def test_json_carries_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = record()
        made.exc_info = sys.exc_info()
    event = json.loads(JsonFormatter().format(made))
    assert "ValueError: boom" in event["exception"]


def test_json_renders_values_json_cannot_hold() -> None:
    event = json.loads(JsonFormatter().format(record(path=Path("/x"))))
    assert event["path"] == "/x"


@pytest.mark.parametrize(
    ("journal", "pid", "expected"),
    [
        (False, False, r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO python_est.test: hello you$"),
        (True, False, r"^INFO python_est.test: hello you$"),
        (True, True, rf"^INFO python_est.test\[{os.getpid()}\]: hello you$"),
        (False, True, rf" INFO python_est.test\[{os.getpid()}\]: hello you$"),
    ],
)
def test_plain_format_drops_the_timestamp_under_journald(
    monkeypatch: pytest.MonkeyPatch, journal: bool, pid: bool, expected: str
) -> None:
    if journal:
        monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    else:
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    text = make_formatter("plain", pid=pid).format(record("hello %s", "you"))
    assert re.search(expected, text), text


def test_setup_logging_writes_one_line_per_event_to_stderr_at_the_level(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    setup_logging("warning", "json")
    logging.getLogger("python_est.server").info("not shown")
    logging.getLogger("python_est.server").warning("shown %s", "once")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["shown once"]
    assert logging.getLogger("python_est").propagate is False


def test_debug_flag_overrides_the_configured_level(tmp_path: Path) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(
        "[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n[logging]\nlevel = error\n"
    )
    assert main(["-c", str(cfg), "init"]) == 0
    assert main(["-c", str(cfg), "user", "list"]) == 0
    assert logging.getLogger("python_est").level == logging.ERROR
    assert main(["-c", str(cfg), "-d", "user", "list"]) == 0
    assert logging.getLogger("python_est").level == logging.DEBUG


def test_operator_actions_are_audited_with_structured_fields(
    audit_records: list[logging.LogRecord], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    audit_operator_action(
        "revoke",
        "revoked",
        serial="7F",
        subject="CN=device",
        requester="device",
        auth="srp",
        label="iot",
        reason="keyCompromise",
    )
    [made] = audit_records
    fields = json.loads(JsonFormatter().format(made))
    assert fields["event"] == "revoke" and fields["result"] == "revoked"
    assert (fields["serial"], fields["subject"], fields["requester"]) == (
        "7F",
        "CN=device",
        "device",
    )
    assert (fields["auth"], fields["label"], fields["reason"]) == ("srp", "iot", "keyCompromise")
    assert fields["operator"].startswith("alice (sudo as ") or fields["operator"] == "alice"
    assert made.getMessage().startswith("revoke result='revoked' serial='7F' ")


@pytest.mark.parametrize("approve", [True, False])
def test_approve_and_reject_are_audited(
    tmp_path: Path, audit_records: list[logging.LogRecord], approve: bool
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text("[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    state = open_state(load_config(cfg), create=True)
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "held")]))
        .sign(key, hashes.SHA256())
    )
    pending = state.ledger.add_pending(
        csr, label="iot", operation="simpleenroll", requester="dev", auth_method="basic"
    )
    state.ledger.close()
    action = ["approve", pending.id] if approve else ["reject", pending.id, "--reason", "unknown"]
    assert main(["-c", str(cfg), "requests", *action]) == 0
    [made] = [r for r in audit_records if getattr(r, "event", None) in ("approve", "reject")]
    fields = json.loads(JsonFormatter().format(made))
    assert fields["event"] == ("approve" if approve else "reject")
    assert fields["result"] == ("approved" if approve else "rejected")
    assert (fields["subject"], fields["requester"], fields["auth"]) == ("CN=held", "dev", "basic")
    assert (fields["label"], fields["request"], fields["serial"]) == ("iot", pending.id, None)


@pytest.mark.parametrize(
    "value",
    [
        "x\n2026-01-01 00:00:00,000 INFO python_est.audit: enroll issued",
        "\x1b[2K\x1b[1Gfake",
        "\r\u202e\u2028\x85\x7f",
    ],
)
def test_plain_format_keeps_every_event_on_one_printable_line(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    text = make_formatter("plain").format(record("subject %s end", value))
    assert text.isprintable() and len(text.splitlines()) == 1
    assert text.endswith(" end")


def test_plain_format_indents_and_escapes_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    try:
        raise ValueError("bad\n2026-01-01 00:00:00,000 INFO python_est.audit: forged\x1b[2K")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    first, *rest = make_formatter("plain").format(made).splitlines()
    assert first.endswith("python_est.test: failed")
    assert rest and all(line.startswith("    ") and line.isprintable() for line in rest)
    assert any("ValueError: bad" in line for line in rest)


@pytest.mark.parametrize("value", ["\u202e\u2066bidi", "\x85\x9bc1\x7f", "\u2028\u2029", "\udcff"])
def test_json_format_escapes_what_json_dumps_leaves_raw(value: str) -> None:
    line = JsonFormatter().format(record("m %s", value, subject=value))
    assert line.isprintable() and len(line.splitlines()) == 1
    event = json.loads(line)
    assert (event["message"], event["subject"]) == (f"m {value}", value)


@pytest.mark.parametrize(
    ("args", "cfg_text", "debug"),
    [
        (["-d"], "", True),
        ([], "[DEFAULT]\ndebug = True\n", True),  # the older python-est's switch
        ([], "", False),
    ],
)
def test_debug_really_prints_debug_lines(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    cfg_text: str,
    debug: bool,
) -> None:
    cfg = tmp_path / "est.cfg"
    cfg.write_text(cfg_text + "[server]\nstate_dir = state\n[ca]\nkey_type = ec-p256\n")
    assert main(["-c", str(cfg), *args, "init"]) == 0
    err = capsys.readouterr().err
    assert (f"DEBUG python_est: python-est {__version__}: config {cfg}" in err) == debug


class _UncachedPlain(logging.Formatter):
    """The plain formatter as it was before issue 20: a copy of every record, and
    `logging.Formatter.formatTime` on every line."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        safe = copy.copy(record)
        safe.message = escape(record.message)
        return super().formatMessage(safe)


@pytest.mark.parametrize("pid", [False, True])
def test_plain_lines_are_what_the_uncached_formatter_wrote(
    monkeypatch: pytest.MonkeyPatch, pid: bool
) -> None:
    # The plain formatter remembers the last second's timestamp text and skips copying records
    # that need no escaping (issue 20); every line must still be the same.
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    plain = make_formatter("plain", pid=pid)
    reference = _UncachedPlain(plain._fmt)
    start = 1_700_000_000.0
    for created in (start, start + 0.999, start + 1.0, start + 1.5, start + 0.25, start + 86400):
        for message in ("plain text %s", "forged\nline %s", "tab\tand \x1b[2J %s"):
            for value in ("arg", "arg\u2028"):
                made = record(message, value)
                made.created, made.msecs = created, (created - int(created)) * 1000
                twin = record(message, value)
                twin.created, twin.msecs = made.created, made.msecs
                assert plain.format(made) == reference.format(twin)
                assert made.message == twin.message  # the record itself is left as it was
