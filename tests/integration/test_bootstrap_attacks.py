"""Issue 13 item 7: the bootstrap page cannot be used against its visitor or the server.

Each attack is performed over real TLS against a real server on 127.0.0.1, and the refusal is
observed (status, reason, and that the ledger holds nothing new):
- a cross-site POST (Origin of another site, Fetch Metadata cross-site, Origin null);
- a browser POST without a form token, or with a token fetched by the attacker for their own
  cookie; a token made by one server process is accepted by another on the same state;
- a client certificate the browser presents is not a login on the page;
- a form of repeated PEM BEGIN markers is refused as a bad CSR before the password check;
- failed page logins count toward the same lockout as HTTP Basic;
- every response carrying a private key is `Cache-Control: no-store`, and the PKCS#12 MAC
  has the encryption's iteration count.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import serialization

from est_harness import (
    Reply,
    RunningServer,
    basic,
    build_request,
    csr_body,
    https,
    make_csr,
    running_server,
    write_credentials,
)
from python_est import wire
from python_est.bootstrap.csrf import COOKIE

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "alice password 1"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36"
LOCKOUT = "[auth]\nmax_failures = 3\nfailure_window = 60\nlockout = 60\n"


def with_user(server: RunningServer) -> RunningServer:
    assert server.state.users is not None
    if USER not in server.state.users.list_users():
        server.state.users.add(USER, PASSWORD)
    return server


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    return with_user(start_est_server(""))


def origin(server: RunningServer) -> str:
    return f"https://127.0.0.1:{server.port}"


def pem_csr() -> str:
    csr, _ = make_csr(USER)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def send(
    server: RunningServer,
    method: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    client_cert: tuple[Path, Path] | None = None,
) -> Reply:
    body = urlencode(fields or {}).encode()
    all_headers = dict(headers or {})
    if method == "POST":
        all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
    raw = build_request(method, "/bootstrap", body, all_headers, server.port)
    return https(server.port, raw, cafile=server.ca_file, client_cert=client_cert)


def fetch_form(server: RunningServer) -> tuple[str, str]:
    """The cookie (name=value) and the hidden form token a browser gets with the form."""
    reply = send(server, "GET", headers={"User-Agent": BROWSER_UA})
    assert reply.status == 200
    cookie = reply.headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith(f"{COOKIE}=")
    match = re.search(rb'name="form_token" value="([^"]+)"', reply.body)
    assert match is not None
    return cookie, html.unescape(match.group(1).decode())


def browser_headers(server: RunningServer, cookie: str | None = None) -> dict[str, str]:
    headers = {
        "User-Agent": BROWSER_UA,
        "Origin": origin(server),
        "Sec-Fetch-Site": "same-origin",
    }
    if cookie is not None:
        headers["Cookie"] = cookie
    return headers


def enroll_fields(**more: str) -> dict[str, str]:
    return {"user": USER, "password": PASSWORD, "mode": "csr", "csr": pem_csr(), **more}


def alert_text(reply: Reply) -> str:
    match = re.search(rb'<div class="alert" role="alert">(.*?)</div>', reply.body, re.S)
    return html.unescape(match.group(1).decode()) if match else ""


@pytest.mark.parametrize(
    "forged",
    [
        {"Origin": "https://evil.example", "User-Agent": BROWSER_UA},
        {"Sec-Fetch-Site": "cross-site", "User-Agent": BROWSER_UA},
        {"Origin": "null", "User-Agent": BROWSER_UA},
        # Even with a genuine cookie and token (an attacker cannot have them, but the origin
        # check stands on its own).
        {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    ],
)
def test_cross_site_posts_are_refused(server: RunningServer, forged: dict[str, str]) -> None:
    cookie, token = fetch_form(server)
    reply = send(server, "POST", enroll_fields(form_token=token), {**forged, "Cookie": cookie})
    assert reply.status == 403
    assert "another site" in alert_text(reply)
    assert server.state.ledger.count() == 0


def test_a_browser_post_needs_the_token_of_its_own_cookie(server: RunningServer) -> None:
    # No cookie and no token, as a forged form in an old browser would send.
    reply = send(server, "POST", enroll_fields(), {"User-Agent": BROWSER_UA})
    assert reply.status == 403
    assert "expired or was not sent from this page" in alert_text(reply)
    # The attacker fetches a form for themselves; the victim's browser has its own cookie.
    _, attackers_token = fetch_form(server)
    victims_cookie, _ = fetch_form(server)
    headers = browser_headers(server, victims_cookie)
    reply = send(server, "POST", enroll_fields(form_token=attackers_token), headers)
    assert reply.status == 403
    assert server.state.ledger.count() == 0
    # The refusal hands out a fresh form; the page used as intended works.
    cookie, token = fetch_form(server)
    reply = send(server, "POST", enroll_fields(form_token=token), browser_headers(server, cookie))
    assert reply.status == 200, alert_text(reply)
    assert server.state.ledger.count() == 1


def test_scripts_without_browser_marks_need_no_token(server: RunningServer) -> None:
    reply = send(server, "POST", enroll_fields(), {"User-Agent": "curl/8.5.0"})
    assert reply.status == 200, alert_text(reply)


def test_a_token_of_one_process_is_accepted_by_another(tmp_path: Path) -> None:
    # Another worker, or the same one after a reload: a new page built from the same state.
    root = tmp_path / "est"
    with running_server(root) as first:
        cookie, token = fetch_form(with_user(first))
    with running_server(root) as second:
        reply = send(
            second, "POST", enroll_fields(form_token=token), browser_headers(second, cookie)
        )
        assert reply.status == 200, alert_text(reply)


def test_a_client_certificate_is_not_a_login_on_the_page(
    server: RunningServer, tmp_path: Path
) -> None:
    # alice holds a valid certificate of this CA (enrolled over HTTP Basic) ...
    csr, key = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request(
        "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
    )
    enrolled = https(server.port, raw, cafile=server.ca_file)
    assert enrolled.status == 200
    [cert] = enrolled.certificates()
    credentials = write_credentials(tmp_path, "alice", cert, key)
    # ... which her browser presents to every page of the server. A form with made-up
    # credentials (enroll_auth = cert, srp, basic: the certificate alone would do) must not
    # enroll on her behalf.
    cookie, token = fetch_form(server)
    fields = {"user": "mallory", "password": "x", "mode": "csr", "csr": pem_csr()}
    headers = browser_headers(server, cookie)
    reply = send(server, "POST", {**fields, "form_token": token}, headers, credentials)
    assert reply.status == 401
    assert alert_text(reply) == "Invalid user name or password."
    assert server.state.ledger.count() == 1  # only the certificate enrolled above


def test_repeated_begin_markers_are_a_bad_csr_before_the_password_check(
    server: RunningServer,
) -> None:
    marker = "-----BEGIN CERTIFICATE REQUEST-----"
    hostile = (marker * (32 * 1024 // len(marker) + 1))[: 32 * 1024]
    fields = {"user": USER, "password": "wrong", "mode": "csr", "csr": hostile}
    reply = send(server, "POST", fields)
    assert reply.status == 400
    assert alert_text(reply) == "No PEM CERTIFICATE REQUEST block found."


def test_failed_page_logins_lock_out_http_basic_too(
    start_est_server: Callable[[str], RunningServer],
) -> None:
    server = with_user(start_est_server(LOCKOUT))
    for _ in range(3):
        assert send(server, "POST", enroll_fields(password="wrong")).status == 401
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request(
        "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
    )
    locked = https(server.port, raw, cafile=server.ca_file)
    assert locked.status == 429


def test_responses_with_a_private_key_are_no_store(server: RunningServer) -> None:
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": basic(USER, PASSWORD)}
    raw = build_request(
        "POST", "/.well-known/est/serverkeygen", csr_body(csr), headers, server.port
    )
    keygen = https(server.port, raw, cafile=server.ca_file)
    assert keygen.status == 200
    assert keygen.headers["Cache-Control"] == "no-store"

    passphrase = "a long passphrase"
    fields = {
        "user": USER,
        "password": PASSWORD,
        "mode": "serverkeygen",
        "common_name": USER,
        "passphrase": passphrase,
        "passphrase2": passphrase,
    }
    page = send(server, "POST", fields)
    assert page.status == 200, alert_text(page)
    assert page.headers["Cache-Control"] == "no-store"
    match = re.search(rb'href="data:application/x-pkcs12;base64,([^"]+)"', page.body)
    assert match is not None
    p12 = base64.b64decode(match.group(1))
    assert wire.mac_iterations(p12) == wire.PKCS12_ITERATIONS
