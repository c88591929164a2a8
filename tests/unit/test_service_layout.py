"""Per-client response shapes: base64 layout (`service.layout`) and bare 401 challenges."""

from __future__ import annotations

import base64

import pytest

from python_est.errors import AuthenticationRequired, EstError, Forbidden
from python_est.messages import (
    CERTS_ONLY,
    HttpRequest,
    HttpResponse,
    bare_challenge,
    error_response,
    text_response,
)
from python_est.service.layout import laid_out, wants_one_line

B64 = ("Content-Transfer-Encoding", "base64")


@pytest.mark.parametrize(
    ("user_agent", "setting", "one_line"),
    [
        ("libest 3.2.0p", "auto", False),
        ("curl/7.88.1", "auto", False),
        ("python-est-client/1.0", "auto", False),
        ("Go-http-client/1.1", "auto", False),
        ("Java/17.0.13", "auto", False),
        ("", "auto", False),  # present but empty: not strongSwan's request
        (None, "auto", True),  # strongSwan pki 5.9.8 sends no User-Agent
        ("strongSwan 6.0.1", "auto", True),
        ("Mozilla/5.0 (compatible; STRONGSWAN)", "auto", True),
        (None, "wrapped", False),
        ("strongSwan 6.0.1", "wrapped", False),
        ("libest 3.2.0p", "single", True),
        (None, "single", True),
    ],
)
def test_who_gets_one_line(user_agent: str | None, setting: str, one_line: bool) -> None:
    assert wants_one_line(user_agent, setting) is one_line


WRAPPED = base64.encodebytes(bytes(range(256)) * 4)  # 76-column lines


def test_a_base64_body_goes_on_one_line() -> None:
    response = HttpResponse(200, (("Content-Type", CERTS_ONLY), B64), WRAPPED, note="n")
    flat = laid_out(response, True)
    assert flat.body == WRAPPED.replace(b"\n", b"")
    assert (flat.status, flat.headers, flat.note) == (200, response.headers, "n")
    assert laid_out(response, False) is response


def test_a_multipart_body_goes_on_one_line_per_part() -> None:
    body = b"--b\r\nContent-Type: application/pkcs8\r\n\r\nAAAA\r\nBBBB\r\n--b--\r\n"
    response = HttpResponse(200, (("Content-Type", "multipart/mixed; boundary=b"),), body)
    expected = b"--b\r\nContent-Type: application/pkcs8\r\n\r\nAAAABBBB\r\n--b--\r\n"
    assert laid_out(response, True).body == expected


@pytest.mark.parametrize(
    "response",
    [
        text_response(200, "line one\nline two"),  # not base64: never touched
        HttpResponse(202, (("Retry-After", "60"),)),
        HttpResponse(204),
    ],
)
def test_other_bodies_are_left_alone(response: HttpResponse) -> None:
    assert laid_out(response, True) is response


# --- 401 challenges for clients without User-Agent (Bouncy Castle) ---


def _request(*headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("POST", "/.well-known/est/simpleenroll", headers)


CHALLENGE = AuthenticationRequired("authentication required", basic_realm="python-est")


def test_a_challenge_to_a_client_without_user_agent_has_no_body() -> None:
    response = bare_challenge(error_response(CHALLENGE), _request())
    assert (response.status, response.body) == (401, b"")
    assert [name for name, _ in response.headers] == ["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("err", "request_"),
    [
        (CHALLENGE, _request(("user-agent", "libest 3.2.0p"))),  # named clients keep the reason
        (AuthenticationRequired("no Basic alternative"), _request()),  # no challenge
        (Forbidden("not yours"), _request()),
    ],
)
def test_other_errors_keep_their_reason(err: EstError, request_: HttpRequest) -> None:
    response = error_response(err)
    assert bare_challenge(response, request_) is response and response.body.strip()
