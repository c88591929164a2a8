"""One-time enrollment codes as TLS-SRP credentials (issue 18 item 2), attacked over real TLS:
reuse, resumption after use, another subject, expiry, another label, concurrent double use,
guessing, and the ordinary authentication never taking a device for a user."""

from __future__ import annotations

import base64
import io
import logging
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from tlslite.api import HandshakeSettings, TLSConnection
from tlslite.errors import TLSRemoteAlert

from bench_srp_probe import first_flight_seconds
from est_harness import Reply, RunningServer, basic, build_request, parse_reply, read_all, srp_alert
from python_est.app.access import device_registry, failure_limiter
from python_est.cli import main
from python_est.cli.commands.devices import srp_verifier
from python_est.devices import Registration
from tests.policy_support import PASSWORD, cn, der_csr, refused

pytestmark = pytest.mark.integration

EST = "/.well-known/est"
CONFIG = """
[label:iot]
[label:other]
[label:both]
enroll_auth = srp+basic
[auth]
account_max_failures = 3
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


def register(server: RunningServer, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert cli(server, "add", *args) == 0
    out = capsys.readouterr().out
    return next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("code"))


def _settings() -> Any:
    settings = HandshakeSettings()
    settings.maxVersion = (3, 3)
    settings.keyExchangeNames = ["srp_sha"]
    settings.cipherNames = ["aes256", "aes128"]
    return settings


def srp_enroll(
    server: RunningServer,
    user: str,
    code: str,
    subject: x509.Name,
    label: str = "iot",
    session: Any = None,
) -> tuple[Reply, Any, bool]:
    """POST simpleenroll over TLS-SRP: the reply, the session and whether it was resumed."""
    der, _ = der_csr(subject)
    headers = {"Content-Type": "application/pkcs10"}
    path = f"{EST}/{label}/simpleenroll" if label else f"{EST}/simpleenroll"
    raw = build_request("POST", path, base64.b64encode(der), headers, server.port)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        conn = TLSConnection(sock)
        conn.handshakeClientSRP(user, code, settings=_settings(), session=session)
        conn.sendall(raw)
        reply = parse_reply(read_all(conn))
        resumed = bool(conn.resumed)
        conn.close()
        return reply, conn.session, resumed


def alert(call: Callable[[], object]) -> str:
    with pytest.raises(TLSRemoteAlert) as info:
        call()
    return str(info.value)


def test_a_code_enrolls_over_srp_once_for_exactly_its_subject(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = register(server, capsys, "--label", "iot", "--subject", "CN=dev42")
    refused(srp_enroll(server, "dev42", code, cn("dev43"))[0], 403, "registered for")
    reply, session, _ = srp_enroll(server, "dev42", code, cn("dev42"))
    assert reply.status == 200, reply.body
    [cert] = reply.certificates()
    assert cert.subject == cn("dev42")
    # Used up: the name now fails the handshake exactly as an unknown user does.
    unknown = srp_alert(server.port, "nobody-at-all", code)
    assert unknown == "bad_record_mac"
    assert alert(lambda: srp_enroll(server, "dev42", code, cn("dev42"))) == unknown
    # The session made with the code does not resume once the code is used.
    assert alert(lambda: srp_enroll(server, "dev42", code, cn("dev42"), session=session)) == (
        unknown
    )
    assert server.state.ledger.count() == 1
    capsys.readouterr()
    assert cli(server, "list") == 0
    assert "basic+srp" in capsys.readouterr().out


def test_an_expired_code_fails_like_an_unknown_user(server: RunningServer) -> None:
    registry = device_registry(server.config)
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    old = Registration("iot", "old", "CN=old", (), past - timedelta(days=1), past)
    registry.add(old, "c0de-c0de", srp=srp_verifier(server.config, "old", "c0de-c0de"))
    assert srp_alert(server.port, "old", "c0de-c0de") == "bad_record_mac"
    assert server.state.ledger.count() == 0


def test_a_code_counts_only_on_its_label_and_never_as_a_user(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = register(server, capsys, "--label", "iot", "--subject", "CN=dev7")
    refused(srp_enroll(server, "dev7", code, cn("dev7"), label="other")[0], 403, "not registered")
    refused(srp_enroll(server, "dev7", code, cn("dev7"), label="")[0], 403, "not registered")
    # Where SRP alone does not do (srp+basic), the device's SRP name is no user either: with
    # alice's password beside it, the request still lacks its SRP user.
    both = register(server, capsys, "--label", "both", "--subject", "CN=dev8")
    der, _ = der_csr(cn("dev8"))
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic("alice", PASSWORD)}
    raw = build_request(
        "POST", f"{EST}/both/simpleenroll", base64.b64encode(der), headers, server.port
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        conn = TLSConnection(sock)
        conn.handshakeClientSRP("dev8", both, settings=_settings())
        conn.sendall(raw)
        refused(parse_reply(read_all(conn)), 401)
    assert srp_enroll(server, "dev7", code, cn("dev7"))[0].status == 200


def test_a_device_name_has_one_srp_code_at_a_time(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    register(server, capsys, "--label", "iot", "--subject", "CN=twin")
    capsys.readouterr()
    assert cli(server, "add", "--label", "other", "--subject", "CN=twin") != 0
    assert "names no label" in capsys.readouterr().err
    assert cli(server, "add", "--label", "other", "--subject", "CN=x", "--srp") != 0
    assert "--srp goes with --password-stdin" in capsys.readouterr().err


def test_a_chosen_password_is_no_srp_password_without_the_flag(
    server: RunningServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ("add", "--label", "iot", "--password-stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-chosen-1\n"))
    assert cli(server, *base, "--subject", "CN=chosen") == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("pw-chosen-2\n"))
    assert cli(server, *base, "--subject", "CN=flagged", "--srp") == 0
    capsys.readouterr()
    assert cli(server, "list") == 0
    lines = {line.split("\t")[1]: line for line in capsys.readouterr().out.splitlines()}
    assert lines["chosen"].endswith(", basic") and lines["flagged"].endswith(", basic+srp")
    # Without --srp the chosen password is a Basic password only: over SRP the name fails like
    # an unknown user.
    assert srp_alert(server.port, "chosen", "pw-chosen-1") == "bad_record_mac"
    assert srp_enroll(server, "flagged", "pw-chosen-2", cn("flagged"))[0].status == 200


def test_concurrent_double_use_over_srp_gives_one_certificate(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = register(server, capsys, "--label", "iot", "--subject", "CN=racer")
    outcomes: list[int | str] = []
    start = threading.Barrier(6)

    def attempt() -> None:
        start.wait()
        try:
            outcomes.append(srp_enroll(server, "racer", code, cn("racer"))[0].status)
        except TLSRemoteAlert as exc:  # the code was used while this one shook hands
            outcomes.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcomes) == 6
    assert outcomes.count(200) == 1, outcomes
    assert set(outcomes) <= {200, 403, "bad_record_mac"}, outcomes
    assert server.state.ledger.count() == 1


def test_guessing_a_code_over_srp_is_counted_by_the_lockouts(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = register(server, capsys, "--label", "iot", "--subject", "CN=guessed")
    for guess in range(3):
        assert srp_alert(server.port, "guessed", f"GUESS-{guess}") == "bad_record_mac"
    # The account is locked: even the right code is refused before any SRP work.
    assert srp_alert(server.port, "guessed", code) == "access_denied"
    assert server.state.ledger.count() == 0


def test_half_open_srp_handshakes_on_a_device_name_count_against_the_address(
    start_est_server: Callable[[str], RunningServer], capsys: pytest.CaptureFixture[str]
) -> None:
    server = start_est_server("[label:iot]\n[auth]\naddress_max_failures = 3\n")
    code = register(server, capsys, "--label", "iot", "--subject", "CN=probed")
    for _ in range(3):  # ServerKeyExchange received, then the prober hangs up
        first_flight_seconds(server.port, "probed")
    lockouts = failure_limiter(server.config, server.state)
    try:
        deadline = time.monotonic() + 5
        while not any(item.kind == "addr" for item in lockouts.lockouts()):
            assert time.monotonic() < deadline, "the address was never locked"
            time.sleep(0.02)
    finally:
        lockouts.close()
    assert srp_alert(server.port, "probed", code) == "access_denied"


def test_imported_codes_work_over_srp_and_a_name_on_two_labels_is_refused(
    server: RunningServer, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    twice = tmp_path / "twice.csv"
    twice.write_text("label,subject\niot,CN=bulk1\nother,CN=bulk1\n")
    capsys.readouterr()
    assert cli(server, "import", str(twice)) != 0
    assert "twice.csv:3" in capsys.readouterr().err
    assert device_registry(server.config).list() == []  # nothing imported
    good = tmp_path / "good.csv"
    good.write_text("label,subject\niot,CN=bulk1\niot,CN=bulk2\n")
    assert cli(server, "import", str(good)) == 0
    codes = {
        name: code
        for name, _, code in (line.split(",") for line in capsys.readouterr().out.splitlines())
    }
    assert srp_enroll(server, "bulk2", codes["bulk2"], cn("bulk2"))[0].status == 200
    again = tmp_path / "again.csv"
    again.write_text("label,subject\nother,CN=bulk1\n")
    assert cli(server, "import", str(again)) != 0
    assert "already has an unused TLS-SRP code on label 'iot'" in capsys.readouterr().err


def test_a_code_used_or_removed_after_the_handshake_gains_nothing(
    server: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    used = register(server, capsys, "--label", "iot", "--subject", "CN=used")
    gone = register(server, capsys, "--label", "iot", "--subject", "CN=gone")

    def handshake(user: str, code: str) -> TLSConnection:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        conn = TLSConnection(sock)
        conn.handshakeClientSRP(user, code, settings=_settings())
        return conn

    def post(conn: TLSConnection, subject: x509.Name) -> Reply:
        der, _ = der_csr(subject)
        raw = build_request(
            "POST", f"{EST}/iot/simpleenroll", base64.b64encode(der),
            {"Content-Type": "application/pkcs10"}, server.port,
        )  # fmt: skip
        try:
            conn.sendall(raw)
            return parse_reply(read_all(conn))
        finally:
            conn.close()

    # Shaken hands with the code, which another connection then uses up: 403, no second one.
    first = handshake("used", used)
    assert srp_enroll(server, "used", used, cn("used"))[0].status == 200
    refused(post(first, cn("used")), 403, "used already")
    # Shaken hands, then the registration is removed: the name is no device any more, and no
    # user either (a password user may ask for its own name), so nothing authenticated it.
    second = handshake("gone", gone)
    assert cli(server, "remove", "--label", "iot", "gone") == 0
    refused(post(second, cn("gone")), 401)
    assert server.state.ledger.count() == 1
