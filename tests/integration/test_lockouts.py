"""Lockouts that stop guessing without locking out everyone (issue 13 item 6), over real TLS.

Each test performs the attack against a real server on 127.0.0.1 and observes the refusal:
look-alike user names share one counter, a guesser behind a NAT locks only itself, a spray of
names from one address is stopped, the 429 says how long, an operator lists and lifts lockouts,
and a refused SRP login is logged with its (escaped) user name.
"""

from __future__ import annotations

import io
import logging
import time
from collections.abc import Callable

import pytest

from est_harness import RunningServer, basic_enroll, srp_alert
from python_est.cli import main
from tests.conftest import captured_records

pytestmark = pytest.mark.integration

ENROLL = "/.well-known/est/simpleenroll"
CACERTS = "/.well-known/est/cacerts"
KELVIN_KIOSK = "\u212aiosk"  # U+212A KELVIN SIGN, then "iosk"


def _server(start: Callable[[str], RunningServer], cfg: str, **users: str) -> RunningServer:
    server = start(cfg)
    assert server.state.users is not None
    for name, password in users.items():
        server.state.users.add(name, password)
    return server


def _cli(server: RunningServer, *args: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["-c", str(server.root / "est.cfg"), *args]) == 0
    return capsys.readouterr().out


def test_a_kelvin_sign_does_not_give_a_guesser_a_fresh_counter(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, "[auth]\nmax_failures = 3\n", kiosk="kiosk password")
    for name in (KELVIN_KIOSK, "KIOSK", KELVIN_KIOSK):
        assert basic_enroll(server.port, server.ca_file, name, "guess").status == 401
    assert basic_enroll(server.port, server.ca_file, "kiosk", "kiosk password").status == 429
    assert srp_alert(server.port, "Kiosk", "guess") == "access_denied"


def test_a_guesser_behind_a_nat_locks_only_itself(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    # Defaults: 5 failures of one user from one address lock that pair.
    server = _server(start_est_server, "", alice="alice password", bob="bob password")
    for _ in range(6):
        assert basic_enroll(server.port, server.ca_file, "alice", "guess").status in (401, 429)
    assert basic_enroll(server.port, server.ca_file, "alice", "alice password").status == 429
    assert srp_alert(server.port, "alice", "alice password") == "access_denied"
    # bob, behind the same address (127.0.0.1), enrolls with his password.
    assert basic_enroll(server.port, server.ca_file, "bob", "bob password").status == 200
    assert srp_alert(server.port, "bob", "bob password") == "ok"


def test_a_spray_of_names_locks_the_address_but_not_its_known_devices(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    cfg = "[auth]\naddress_max_failures = 6\n"
    server = _server(start_est_server, cfg, carol="carol password", dave="dave password")
    assert (
        basic_enroll(server.port, server.ca_file, "carol", "carol password").status == 200
    )  # carol is known here
    for i in range(3):
        assert basic_enroll(server.port, server.ca_file, f"admin{i}", "guess").status == 401
        assert srp_alert(server.port, f"root{i}", "guess") == "bad_record_mac"
    refused = basic_enroll(
        server.port, server.ca_file, "dave", "dave password"
    )  # never logged in from here
    assert refused.status == 429
    assert b"from this address" in refused.body
    assert basic_enroll(server.port, server.ca_file, "carol", "carol password").status == 200


def test_the_429_says_how_long_the_lockout_lasts(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    cfg = "[auth]\nmax_failures = 2\nlockout = 120\n"
    server = _server(start_est_server, cfg, alice="alice password")
    for _ in range(2):
        assert basic_enroll(server.port, server.ca_file, "alice", "guess").status == 401
    locked = basic_enroll(server.port, server.ca_file, "alice", "alice password")
    assert locked.status == 429
    seconds = int(locked.headers["Retry-After"])
    assert 110 <= seconds <= 120
    assert locked.body.decode() == (
        "Too Many Requests: too many failed logins for this user name from this address;"
        f" locked for another {seconds} s\n"
    )


def test_an_operator_lists_and_lifts_lockouts(
    start_est_server: Callable[[str], RunningServer], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = "[auth]\nmax_failures = 2\nlockout = 600\n"
    server = _server(start_est_server, cfg, alice="alice password")
    assert _cli(server, "lockouts", "list", capsys=capsys) == "python-est: no lockouts\n"
    for _ in range(2):
        assert srp_alert(server.port, "alice", "guess") == "bad_record_mac"
    assert basic_enroll(server.port, server.ca_file, "alice", "alice password").status == 429
    listing = _cli(server, "lockouts", "list", capsys=capsys)
    assert listing.startswith("user 'alice' from 127.0.0.1: locked for another ")
    assert listing.endswith(" s\n") and listing.count("\n") == 1

    with captured_records("python_est.audit", logging.INFO) as records:
        cleared = _cli(server, "lockouts", "clear", "ALICE", capsys=capsys)
    assert cleared == "python-est: cleared the lockout of user 'alice' from 127.0.0.1\n"
    [event] = [r for r in records if getattr(r, "event", None) == "lockout-clear"]
    assert event.getMessage() == (
        "lockout-clear cleared by the operator: user 'alice' from 127.0.0.1"
    )
    assert (event.kind, event.user, event.address) == ("pair", "alice", "127.0.0.1")  # type: ignore[attr-defined]
    assert basic_enroll(server.port, server.ca_file, "alice", "alice password").status == 200
    again = _cli(server, "lockouts", "clear", "127.0.0.1", capsys=capsys)
    assert again == "python-est: no lockouts for '127.0.0.1'; nothing cleared\n"


def test_user_add_refuses_a_look_alike_name_naming_both(
    start_est_server: Callable[[str], RunningServer],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = _server(start_est_server, "", kiosk="kiosk password")
    monkeypatch.setattr("sys.stdin", io.StringIO("another password\n"))
    cfg = str(server.root / "est.cfg")
    assert main(["-c", cfg, "user", "add", KELVIN_KIOSK, "--password-stdin"]) == 1
    err = capsys.readouterr().err
    stored_form = "Kiosk"  # NFC turns the KELVIN SIGN into a K; case folding makes it "kiosk"
    assert err.startswith(f"python-est: user {stored_form!r} collides with the existing user")
    assert "'kiosk'" in err
    assert server.state.users is not None and server.state.users.list_users() == ["kiosk"]
    # The look-alike cannot log in to the real account either: logins need the exact name.
    assert basic_enroll(server.port, server.ca_file, KELVIN_KIOSK, "kiosk password").status == 401


def test_a_refused_srp_login_is_logged_with_the_escaped_user_name(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, "[auth]\nmax_failures = 1\n", alice="alice password")
    hostile = "alice\x1b[2J\u202e\nfake audit line"
    with captured_records("python_est.tls", logging.INFO) as records:
        assert srp_alert(server.port, hostile, "guess") == "bad_record_mac"
        assert srp_alert(server.port, hostile, "guess") == "access_denied"
        # The server logs on its connection thread after the alert left: wait for both lines.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(_srp_lines(records)) < 2:
            time.sleep(0.02)
    lines = _srp_lines(records)
    assert [line.split(" for user ")[0] for line in lines] == [
        "TLS-SRP authentication failed",
        "TLS-SRP login refused",
    ]
    for line in lines:
        assert repr(hostile) in line
        assert "\x1b" not in line and "\n" not in line and "\u202e" not in line


def _srp_lines(records: list[logging.LogRecord]) -> list[str]:
    return [r.getMessage() for r in records if r.getMessage().startswith("TLS-SRP ")]
