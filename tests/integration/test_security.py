"""Security properties of the whole server: password guessing is slowed down and refused (HTTP
Basic, TLS-SRP, the bootstrap form), SRP does not reveal which users exist, and secret files
are private whatever the umask."""

from __future__ import annotations

import os
import stat
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization

import est_harness as h
from est_harness import (
    Reply,
    RunningServer,
    basic_enroll,
    build_request,
    https,
    make_csr,
    srp_alert,
)

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password 1"
LOCKOUT = "[auth]\nmax_failures = 3\nfailure_window = 60\nlockout = 60\naddress_max_failures = 3\n"
NO_LOCKOUT = (
    "[auth]\nmax_failures = 10000\naccount_max_failures = 10000\naddress_max_failures = 10000\n"
)
ENROLL = "/.well-known/est/simpleenroll"
CACERTS = "/.well-known/est/cacerts"


def _server(start: Callable[[str], RunningServer], cfg: str) -> RunningServer:
    server = start(cfg)
    assert server.state.users is not None
    server.state.users.add(USER, PASSWORD, group_bits=2048)
    return server


# --- brute force ------------------------------------------------------------------------------


def test_basic_guessing_is_refused_with_429(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, LOCKOUT)
    for _ in range(3):
        assert (
            basic_enroll(server.port, server.ca_file, USER, "wrong", common_name=USER).status == 401
        )
    locked = basic_enroll(
        server.port, server.ca_file, USER, PASSWORD, common_name=USER
    )  # even the right password, while locked
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    # The lock also covers TLS-SRP: one counter per user, whatever the protocol.
    assert srp_alert(server.port, USER, PASSWORD) == "access_denied"


def test_srp_guessing_is_refused_in_the_handshake(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, LOCKOUT)
    assert srp_alert(server.port, USER, PASSWORD) == "ok"
    for _ in range(3):
        assert srp_alert(server.port, USER, "wrong") == "bad_record_mac"
    assert srp_alert(server.port, USER, PASSWORD) == "access_denied"
    assert basic_enroll(server.port, server.ca_file, USER, PASSWORD, common_name=USER).status == 429
    # Certificate clients and anonymous /cacerts are not password logins: unaffected.
    raw = build_request("GET", CACERTS, port=server.port)
    assert https(server.port, raw, cafile=server.ca_file).status == 200


def test_guessing_many_user_names_locks_the_address(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, LOCKOUT)
    assert (
        basic_enroll(server.port, server.ca_file, "mallory1", "x", common_name=USER).status == 401
    )
    assert srp_alert(server.port, "mallory2", "x") == "bad_record_mac"
    assert (
        basic_enroll(server.port, server.ca_file, "mallory3", "x", common_name=USER).status == 401
    )
    # This address is locked for every user name without a recent login from it.
    assert basic_enroll(server.port, server.ca_file, USER, PASSWORD, common_name=USER).status == 429
    assert srp_alert(server.port, USER, PASSWORD) == "access_denied"


def test_bootstrap_form_guessing_is_refused_with_429(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, LOCKOUT)
    csr, _ = make_csr(USER)
    pem = csr.public_bytes(serialization.Encoding.PEM).decode()

    def submit(password: str) -> Reply:
        body = urlencode({"user": USER, "password": password, "mode": "csr", "csr": pem})
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        raw = build_request("POST", "/bootstrap", body.encode(), headers, server.port)
        return https(server.port, raw, cafile=server.ca_file)

    for _ in range(3):
        assert submit("wrong").status == 401
    locked = submit(PASSWORD)
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert b"<form" in locked.body  # the page again, with the reason, not a bare error


# --- SRP user enumeration ---------------------------------------------------------------------


def _median_ms(samples: list[float]) -> float:
    return 1000 * statistics.median(samples)


def test_unknown_user_and_wrong_password_look_the_same_over_srp(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    # RFC 5054 §2.5.1.3: unknown users get a simulated verifier, so both fail at the Finished
    # check with the same alert, after the same work.
    server = _server(start_est_server, NO_LOCKOUT)
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    alerts: dict[str, set[str]] = {"unknown": set(), "wrong": set()}
    for attempt in range(100):
        for kind, user in (("unknown", f"nobody{attempt}"), ("wrong", USER)):
            started = time.perf_counter()
            alerts[kind].add(srp_alert(server.port, user, "not the password"))
            timings[kind].append(time.perf_counter() - started)
    assert alerts == {"unknown": {"bad_record_mac"}, "wrong": {"bad_record_mac"}}
    unknown, wrong = _median_ms(timings["unknown"]), _median_ms(timings["wrong"])
    print(f"SRP failure median: unknown user {unknown:.2f} ms, wrong password {wrong:.2f} ms")
    assert abs(unknown - wrong) < max(3.0, 0.5 * min(unknown, wrong))


def test_unknown_user_and_wrong_password_look_the_same_over_basic(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = _server(start_est_server, NO_LOCKOUT)
    replies: dict[str, set[tuple[int, bytes]]] = {"unknown": set(), "wrong": set()}
    timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for attempt in range(30):
        for kind, user in (("unknown", f"nobody{attempt}"), ("wrong", USER)):
            started = time.perf_counter()
            reply = basic_enroll(
                server.port, server.ca_file, user, "not the password", common_name=USER
            )
            timings[kind].append(time.perf_counter() - started)
            replies[kind].add((reply.status, reply.body))
    assert replies["unknown"] == replies["wrong"]
    assert len(replies["wrong"]) == 1
    unknown, wrong = _median_ms(timings["unknown"]), _median_ms(timings["wrong"])
    print(f"Basic failure median: unknown user {unknown:.2f} ms, wrong password {wrong:.2f} ms")
    assert abs(unknown - wrong) < max(3.0, 0.5 * min(unknown, wrong))


# --- file modes ---------------------------------------------------------------------------------

PUBLIC_SUFFIXES = (".pem", ".crl")  # certificates and CRLs: meant to be read


def test_state_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    cfg = h.write_config(tmp_path, "")
    old = os.umask(0)  # the children inherit it: the code must not rely on the umask
    try:
        h.init_state(cfg, {USER: PASSWORD})
        with h.Daemon(cfg) as server:
            raw = h.enroll_request(
                f"{h.EST}/simpleenroll", h.csr_body(h.make_csr(USER)[0]), h.basic(USER, PASSWORD)
            )
            cafile = tmp_path / "state" / "ca" / "ca.pem"
            assert h.https(server.port, raw, context=h.client_context(cafile)).status == 200
            modes = {
                path.relative_to(tmp_path / "state").as_posix(): stat.S_IMODE(path.stat().st_mode)
                for path in [tmp_path / "state", *(tmp_path / "state").rglob("*")]
            }
    finally:
        os.umask(old)
    for name in ("ca/ca.key", "tls/server.key", "users.srp", "ledger.sqlite3"):
        assert modes[name] == 0o600, (name, oct(modes[name]))
    assert modes["ledger.sqlite3-wal"] == 0o600  # written while the server ran
    for name, mode in modes.items():
        if (tmp_path / "state" / name).is_dir():
            assert mode == 0o700, (name, oct(mode))
        elif not name.endswith(PUBLIC_SUFFIXES):
            assert mode & 0o077 == 0, (name, oct(mode))
