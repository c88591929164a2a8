"""Pre-registered devices and one-time enrollment codes (issue 18 item 2), attacked over real
TLS: reuse, another subject, expiry, another label, concurrent double use."""

from __future__ import annotations

import base64
import io
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_harness import Reply, RunningServer, basic, build_request, https
from python_est.app.access import device_registry
from python_est.cli import main
from python_est.devices import Registration
from tests.policy_support import PASSWORD, cn, der_csr, held_id, refused

pytestmark = pytest.mark.integration

EST = "/.well-known/est"
CONFIG = """
[label:iot]
validity_days = 30
[label:other]
[label:strict]
require_registration = yes
password_subjects = any
[label:held]
approval = manual
"""


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server(CONFIG)
    assert running.state.users is not None
    running.state.users.add("alice", PASSWORD)
    return running


def cli(server: RunningServer, *args: str) -> int:
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return main(["-c", str(server.root / "est.cfg"), "devices", *args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def register(
    server: RunningServer, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[str, str]:
    capsys.readouterr()
    assert cli(server, "add", *args) == 0
    out = capsys.readouterr().out
    fields = dict(
        line.split(": ", 1) for line in out.splitlines() if line.startswith(("user", "code"))
    )
    return fields["user"], fields["code"]


def enroll(
    server: RunningServer,
    user: str,
    code: str,
    subject: x509.Name,
    label: str = "iot",
    sans: tuple[x509.GeneralName, ...] = (),
    operation: str = "simpleenroll",
) -> Reply:
    der, _ = der_csr(subject, sans=sans)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(user, code)}
    path = f"{EST}/{label}/{operation}" if label else f"{EST}/{operation}"
    raw = build_request("POST", path, base64.b64encode(der), headers, server.port)
    return https(server.port, raw, cafile=server.ca_file)


def test_a_code_enrolls_exactly_once_for_exactly_its_names(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(
        server, capsys, "--label", "iot", "--subject", "CN=dev42", "--san", "DNS:dev42.example"
    )
    assert name == "dev42" and len(code) >= 32
    dns = (x509.DNSName("dev42.example"),)
    # Another subject, or other SANs, with the valid code: 403, and the code stays usable.
    refused(enroll(server, name, code, cn("dev43"), sans=dns), 403, "registered for")
    refused(enroll(server, name, code, cn("dev42")), 403, "registered for")
    extra = (*dns, x509.DNSName("admin.example"))
    refused(enroll(server, name, code, cn("dev42"), sans=extra), 403, "registered for")
    reply = enroll(server, name, code, cn("dev42"), sans=dns)
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert cert.subject == cn("dev42")
    # Reuse of the used code.
    refused(enroll(server, name, code, cn("dev42"), sans=dns), 403, "used already")
    refused(enroll(server, name, code, cn("dev42"), sans=dns, operation="serverkeygen"), 403)
    # A wrong code is a 401 like a wrong password.
    refused(enroll(server, name, "WRONG-CODE", cn("dev42"), sans=dns), 401)
    assert [c.serial for c in server.state.ledger.list_certificates(limit=10)] == [
        cert.serial_number
    ]
    capsys.readouterr()
    assert cli(server, "list") == 0
    assert "used" in capsys.readouterr().out


def test_an_expired_code_is_refused(server: RunningServer) -> None:
    registry = device_registry(server.config)
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    registry.add(
        Registration("iot", "old", "CN=old", (), past - timedelta(days=1), past), "c0de-c0de"
    )
    refused(enroll(server, "old", "c0de-c0de", cn("old")), 403, "expired")
    assert server.state.ledger.count() == 0


def test_a_code_works_only_on_its_label(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "iot", "--subject", "CN=dev7")
    refused(enroll(server, name, code, cn("dev7"), label="other"), 401)
    refused(enroll(server, name, code, cn("dev7"), label=""), 401)
    assert enroll(server, name, code, cn("dev7")).status == 200


def test_concurrent_double_use_gives_one_certificate(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "iot", "--subject", "CN=racer")
    replies: list[Reply] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        start.wait()
        replies.append(enroll(server, name, code, cn("racer")))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [200, 403, 403, 403, 403, 403], [r.body for r in replies]
    assert server.state.ledger.count() == 1


def test_a_removed_registration_no_longer_enrolls(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "iot", "--subject", "CN=gone")
    assert cli(server, "remove", "--label", "iot", name) == 0
    refused(enroll(server, name, code, cn("gone")), 401)
    assert cli(server, "remove", "--label", "iot", name) == 1


def test_require_registration_refuses_everyone_else(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # alice may choose any subject on "strict", but only a registered one is issued, once.
    refused(
        enroll(server, "alice", PASSWORD, cn("anything"), label="strict"), 403, "pre-registered"
    )
    register(server, capsys, "--label", "strict", "--subject", "CN=kiosk-1")
    assert enroll(server, "alice", PASSWORD, cn("kiosk-1"), label="strict").status == 200
    refused(enroll(server, "alice", PASSWORD, cn("kiosk-1"), label="strict"), 403, "pre-registered")
    name, code = register(server, capsys, "--label", "strict", "--subject", "CN=kiosk-2")
    assert enroll(server, name, code, cn("kiosk-2"), label="strict").status == 200


def test_a_held_code_enrollment_uses_the_code_when_issued(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "held", "--subject", "CN=slow")
    der, _ = der_csr(cn("slow"))

    def send() -> Reply:
        headers = {"Content-Type": "application/pkcs10", "Authorization": basic(name, code)}
        raw = build_request(
            "POST", f"{EST}/held/simpleenroll", base64.b64encode(der), headers, server.port
        )
        return https(server.port, raw, cafile=server.ca_file)

    request_id = held_id(send())
    server.state.ledger.decide_pending(request_id, True)
    assert send().status == 200
    # The approved request answers its retry idempotently, but the code enrolls nothing new.
    refused(enroll(server, name, code, cn("slow"), label="held"), 403, "used already")


def test_codes_are_stored_hashed_in_a_private_file(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _, code = register(server, capsys, "--label", "iot", "--subject", "CN=secret")
    path = server.config.server.state_dir / "devices.sqlite3"
    assert path.stat().st_mode & 0o777 == 0o600
    stored = b"".join(p.read_bytes() for p in path.parent.glob("devices.sqlite3*"))
    assert code.encode() not in stored


def test_csv_import_registers_or_names_the_bad_line(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    good = tmp_path / "devices.csv"
    good.write_text(
        "label,subject,san,expires\niot,CN=csv-1,DNS:csv-1.example,1d\niot,CN=csv-2,,\n"
    )
    capsys.readouterr()
    assert cli(server, "import", str(good)) == 0
    lines = capsys.readouterr().out.splitlines()
    codes = {line.split(",")[0]: line.split(",")[2] for line in lines}
    assert set(codes) == {"csv-1", "csv-2"}
    assert enroll(server, "csv-2", codes["csv-2"], cn("csv-2")).status == 200
    for text, where, phrase in (
        ("label,subject\niot,CN=ok-1\niot,CN=x\x1b\n", ":3:", "control characters"),
        ("label,subject,san\niot,CN=ok-1,FTP:x\n", ":2:", "subjectAltName"),
        ("label,subject\nnope,CN=ok-1\n", ":2:", "no CA label"),
        ("label,subject\niot,CN=ok-1\niot,CN=ok-1\n", ":3:", "also on line 2"),
        ("label,subject\niot,O=no-cn\n", ":2:", "no single CN"),
        ("lable,subject\n", ":1:", "header"),
        ("label,subject\niot,CN=csv-1\n", ":2:", "already has a device"),
    ):
        bad = tmp_path / "bad.csv"
        bad.write_text(text)
        capsys.readouterr()
        assert cli(server, "import", str(bad)) == 1
        err = capsys.readouterr().err
        assert f"{bad}{where}" in err and phrase in err, err
    assert device_registry(server.config).get("iot", "ok-1") is None  # nothing half-imported


def test_cli_add_refuses_bad_input_naming_it(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    for args, phrase in (
        (("--label", "nope", "--subject", "CN=a"), "no CA label 'nope'"),
        (("--label", "iot", "--subject", "not a name"), "RFC 4514"),
        (("--label", "iot", "--subject", "CN=a", "--san", "x"), "subjectAltName"),
        (("--label", "iot", "--subject", "CN=a", "--expires", "soon"), "expiry"),
        (("--label", "iot", "--subject", "CN=a", "--expires", "2000-01-01"), "in the past"),
        (("--label", "iot", "--subject", "CN=a", "--name", "a:b"), "device name"),
    ):
        capsys.readouterr()
        assert cli(server, "add", *args) in (1, 2)
        assert phrase in capsys.readouterr().err


def test_guessing_a_code_is_locked_out_like_a_password(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "iot", "--subject", "CN=guess")
    for attempt in range(5):
        refused(enroll(server, name, f"guess-{attempt}", cn("guess")), 401)
    refused(enroll(server, name, code, cn("guess")), 429)  # even the right code, while locked


def test_the_bootstrap_page_takes_a_code(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    name, code = register(server, capsys, "--label", "", "--subject", "CN=page-dev")
    csr = x509.load_der_x509_csr(der_csr(cn("page-dev"))[0])
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()
    form = {"user": name, "password": code, "mode": "csr", "csr": pem}
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    raw = build_request("POST", "/bootstrap", urlencode(form).encode(), headers, server.port)
    reply = https(server.port, raw, cafile=server.ca_file)
    assert reply.status == 200 and server.state.ledger.count() == 1, reply.body[:300]
    refused(enroll(server, name, code, cn("page-dev"), label=""), 403, "used already")


def test_a_password_instead_of_a_code(
    server: RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("my own device password\n"))
    capsys.readouterr()
    args = ("add", "--label", "iot", "--subject", "CN=chosen", "--password-stdin")
    assert cli(server, *args) == 0
    assert "code:" not in capsys.readouterr().out
    assert enroll(server, "chosen", "my own device password", cn("chosen")).status == 200
    refused(enroll(server, "chosen", "my own device password", cn("chosen")), 403, "used already")


def user_cli(server: RunningServer, *args: str) -> int:
    logger = logging.getLogger("python_est")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    try:
        return main(["-c", str(server.root / "est.cfg"), "user", *args])
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def test_a_device_cannot_take_a_user_name_nor_a_user_a_device_name(
    server: RunningServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # A device named after a user would turn that user's Basic logins on the label into code
    # logins: the user's password would stop working there, a look-alike would pass for it.
    assert server.state.users is not None
    server.state.users.add("\uff4biosk", PASSWORD)  # FULLWIDTH LATIN SMALL LETTER K
    for name, user in (("alice", "alice"), ("ALICE", "alice"), ("kiosk", "\uff4biosk")):
        capsys.readouterr()
        assert cli(server, "add", "--label", "iot", "--subject", "CN=x", "--name", name) == 1
        err = capsys.readouterr().err
        assert f"device name {name!r} is the user {user!r}" in err, err
    rows = tmp_path / "devices.csv"
    rows.write_text("label,subject,name\niot,CN=fine,fine\niot,CN=x,Alice\n")
    capsys.readouterr()
    assert cli(server, "import", str(rows)) == 1
    assert "device name 'Alice' is the user 'alice'" in capsys.readouterr().err
    assert device_registry(server.config).list() == []  # nothing registered by either
    # Alice's password still enrolls on the label.
    assert enroll(server, "alice", PASSWORD, cn("alice")).status == 200

    name, code = register(server, capsys, "--label", "iot", "--subject", "CN=dev-7")
    for user in ("dev-7", "DEV-7"):
        monkeypatch.setattr("sys.stdin", io.StringIO("a long enough password\n"))
        capsys.readouterr()
        assert user_cli(server, "add", user, "--password-stdin") == 1
        err = capsys.readouterr().err
        assert f"user {user!r} is the device 'dev-7' registered on label 'iot'" in err, err
    assert server.state.users.list_users() == ["alice", "\uff4biosk"]
    assert enroll(server, name, code, cn("dev-7")).status == 200


def test_user_import_refuses_a_registered_device_name(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from tests.unit.test_users import OPENSSL_SRPVFILE  # users alice and carol

    register(server, capsys, "--label", "other", "--subject", "CN=Carol")
    source = tmp_path / "srpvfile.txt"
    source.write_text(OPENSSL_SRPVFILE)
    capsys.readouterr()
    assert user_cli(server, "import", "openssl", str(source), "--overwrite") == 1
    err = capsys.readouterr().err
    assert "user 'carol' is the device 'Carol' registered on label 'other'" in err, err
    assert server.state.users is not None
    assert server.state.users.list_users() == ["alice"]  # all or nothing
