"""Issue 13 item 4: what the log and the operator's console show cannot be forged by a client.

Attacks over real TLS against a real server on 127.0.0.1, with the log formatted exactly as
`python-est serve` formats it (`setup_logging`, plain and JSON):
- a self-signed client certificate whose subject holds a newline and a complete fake audit
  event (it authenticates nobody, but its subject is logged);
- an HTTP Basic user name holding the same fake event, with a wrong password;
- a certificate issued before this fix with a hostile subject (control characters, escape
  sequences, a bidirectional override) renewing, so its subject reaches the connection line
  as the authenticated identity and the audit log (issued or refused);
- a CSR with such a subject on a manual-approval label, then the operator's approval.
Every line written must be one event: plain lines parse as `time level logger: message` with
only printable characters, JSON lines parse as one object each, and no forged event appears.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from est_harness import RunningServer, basic, build_request, csr_body, https, write_credentials
from python_est.cli import main
from python_est.cli.logs import setup_logging
from python_est.ledger import IssuedCertificate

pytestmark = pytest.mark.integration

FORGED = "2026-01-01 00:00:00,000 INFO python_est.audit: enroll issued serial=01 subject='CN=admin'"
HOSTILE = f"x\n{FORGED}\x1b[2K\r\u202e"
PLAIN_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(python_est[\w.]*): (.*)$"
)
CONFIG = "[label:held]\napproval = manual\npassword_subjects = any\n"
USER, PASSWORD = "alice", "alice password"


def started(start_est_server: Callable[[str], RunningServer], fmt: str) -> RunningServer:
    # The operator's CLI writes its audit event in the same format as the server.
    running = start_est_server(f"{CONFIG}[logging]\nformat = {fmt}\n")
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


@pytest.fixture
def log_output(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], io.StringIO]]:
    """Format python_est logging as `serve` does, into a buffer standing in for stderr."""

    def start(fmt: str) -> io.StringIO:
        stream = io.StringIO()
        monkeypatch.setattr(sys, "stderr", stream)
        monkeypatch.delenv("JOURNAL_STREAM", raising=False)
        setup_logging("debug", fmt)
        return stream

    yield start


def self_signed(directory: Path, subject: x509.Name) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return write_credentials(directory, "rogue", cert, key)


def hostile_name(marker: str) -> x509.Name:
    # CN is capped at 64 characters (RFC 5280 ub-common-name); O carries the long fake event.
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{marker}\n\x1b[8m"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"{marker}{HOSTILE}"),
        ]
    )


def hostile_csr(marker: str) -> tuple[x509.CertificateSigningRequest, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(hostile_name(marker))
    return csr.sign(key, hashes.SHA256()), key


def post(
    server: RunningServer,
    path: str,
    body: bytes,
    authorization: str | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> int:
    headers = {"Content-Type": "application/pkcs10"}
    if authorization is not None:
        headers["Authorization"] = authorization
    raw = build_request("POST", path, body, headers, server.port)
    return https(server.port, raw, cafile=server.ca_file, client_cert=client_cert).status


def issued_before_the_fix(server: RunningServer, tmp_path: Path) -> tuple[Path, Path]:
    """A certificate with a hostile subject already in the ledger (issued by an older version)."""
    csr, key = hostile_csr("RENEWER")
    cert = server.state.ca.issue(csr, server.config.labels[""].profile)
    server.state.ledger.record(
        IssuedCertificate.from_certificate(
            cert, requester=USER, auth_method="basic", label="", operation="simpleenroll"
        )
    )
    return write_credentials(tmp_path, "renewer", cert, key)


def plain_events(text: str) -> list[tuple[str, str]]:
    events = []
    for line in text.splitlines():
        assert line.isprintable(), line
        match = PLAIN_LINE.match(line)
        assert match is not None, f"not one whole event: {line!r}"
        events.append((match.group(2), match.group(3)))
    return events


def json_events(text: str) -> list[dict[str, object]]:
    events = []
    for line in text.split("\n")[:-1]:
        assert line.isprintable(), line
        event = json.loads(line)
        assert isinstance(event, dict)
        events.append(event)
    return events


def run_attacks(server: RunningServer, tmp_path: Path) -> None:
    rogue = self_signed(tmp_path, hostile_name("ROGUE"))
    enroll = "/.well-known/est/simpleenroll"
    csr, _ = hostile_csr("CSR")
    # 1. Self-signed certificate, no other credentials: refused, but its subject is logged.
    assert post(server, enroll, csr_body(csr), client_cert=rogue) == 401
    # 2. A Basic user name carrying the fake event, wrong password: 401, logged and audited.
    assert post(server, enroll, csr_body(csr), basic(f"BASIC{HOSTILE}", "wrong")) == 401
    # 3. A certificate issued before the fix renews: authenticated, so its subject is the
    #    identity on the connection line and the requester in the audit event.
    renewer = issued_before_the_fix(server, tmp_path)
    renew_csr, _ = hostile_csr("RENEWER")
    post(server, "/.well-known/est/simplereenroll", csr_body(renew_csr), client_cert=renewer)
    # 4. A hostile CSR on the manual-approval label, then the operator decides.
    held_csr, _ = hostile_csr("HELD")
    status = post(
        server, "/.well-known/est/held/simpleenroll", csr_body(held_csr), basic(USER, PASSWORD)
    )
    if status == 202:
        [pending] = server.state.ledger.list_pending()
        assert cli(server.root, "requests", "approve", pending.id) == 0


def cli(root: Path, *args: str) -> int:
    # `main()` sets logging up from the server's config; the test's set-up is put back after.
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return main(["-c", str(root / "est.cfg"), *args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def test_plain_log_has_no_forged_line(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    log_output: Callable[[str], io.StringIO],
) -> None:
    server = started(start_est_server, "plain")
    stream = log_output("plain")
    run_attacks(server, tmp_path)
    server.server.shutdown(grace=2.0)  # every connection's line is written
    text = stream.getvalue()
    events = plain_events(text)
    # The fake event is text inside genuine events, never an event of its own.
    fake = FORGED.split(": ", 1)[1]
    assert [msg for logger, msg in events if msg.startswith(fake)] == []
    # The hostile values did reach the log, escaped: the newline as the two characters \n.
    connection_lines = [msg for logger, msg in events if logger == "python_est.server"]
    assert any("ROGUE" in msg and "\\n2026-01-01" in msg for msg in connection_lines), text
    assert any("BASIC" in msg and "\\n2026-01-01" in msg for _, msg in events), text
    assert any("RENEWER" in msg and "\\x1b" in msg for _, msg in events), text
    assert "\x1b" not in text and "\u202e" not in text and "\r" not in text


def test_json_log_stays_one_valid_object_per_line(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    log_output: Callable[[str], io.StringIO],
) -> None:
    server = started(start_est_server, "json")
    stream = log_output("json")
    run_attacks(server, tmp_path)
    server.server.shutdown(grace=2.0)
    events = json_events(stream.getvalue())
    audits = [e for e in events if e["logger"] == "python_est.audit"]
    fake = FORGED.split(": ", 1)[1]
    assert not [e for e in events if str(e["message"]).startswith(fake)]
    assert not [e for e in audits if e.get("subject") == "CN=admin"]
    # Structured fields keep the value (JSON escapes it); the connection line's message is the
    # plain line, with the subject quoted.
    # The renewal's CSR is refused (400: control characters), and its hostile certificate
    # subject is the requester of the refused-request event.
    assert any(str(e.get("requester", "")).startswith("O=RENEWERx\n2026-01-01") for e in audits)
    assert any(str(e.get("requester", "")).startswith("BASICx") for e in audits)
    assert any(
        "ROGUE" in str(e["message"]) and "\\n2026-01-01" in str(e["message"]) for e in events
    )


def test_console_shows_the_escapes_not_a_fake_subject(
    start_est_server: Callable[[str], RunningServer],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = started(start_est_server, "plain")
    # Really CN=admin; on a terminal the escapes erase it and draw CN=device1 in its place.
    disguised = "admin\x1b[2K\x1b[1GCN=device1\u202e"
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, disguised)]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("device1.example")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    # Such a CSR is now refused at the door (control and bidi characters, 400) ...
    status = post(
        server, "/.well-known/est/held/simpleenroll", csr_body(csr), basic(USER, PASSWORD)
    )
    assert status == 400
    assert server.state.ledger.list_pending() == []
    # ... but one held by an older version may still wait in the queue: the console must
    # show it as it is.
    server.state.ledger.add_pending(
        csr, label="held", operation="simpleenroll", requester=USER, auth_method="basic"
    )
    [pending] = server.state.ledger.list_pending()
    capsys.readouterr()
    assert cli(server.root, "requests", "list") == 0
    assert cli(server.root, "requests", "show", pending.id) == 0
    out = capsys.readouterr().out
    # Tabs separate the listing's columns; nothing else non-printable reaches the terminal.
    assert all(line.replace("\t", " ").isprintable() for line in out.splitlines())
    assert "\x1b" not in out and "\u202e" not in out
    listing, *_ = out.splitlines()
    assert "CN=admin\\x1b[2K\\x1b[1GCN=device1\\u202e" in listing
    assert "DNS:device1.example" in listing
    assert '  RDN 1: commonName (2.5.4.3) = "admin\\x1b[2K\\x1b[1GCN=device1\\u202e"' in out
    assert '    DNS: "device1.example"' in out


def test_certs_and_user_listings_show_the_escapes(
    start_est_server: Callable[[str], RunningServer],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = started(start_est_server, "plain")
    renewer, _ = issued_before_the_fix(server, tmp_path)
    serial = format(x509.load_pem_x509_certificate(renewer.read_bytes()).serial_number, "X")
    assert server.state.users is not None
    server.state.users.set_allowed_names(USER, (USER, "nimda\u202e"))
    capsys.readouterr()
    assert cli(server.root, "certs", "list") == 0
    assert cli(server.root, "certs", "show", serial) == 0
    assert cli(server.root, "user", "list") == 0
    out = capsys.readouterr().out
    assert all(line.replace("\t", " ").isprintable() for line in out.splitlines())
    assert out.count("O=RENEWERx\\n2026-01-01") == 2  # list and show
    assert "may request: alice, nimda\\u202e" in out
