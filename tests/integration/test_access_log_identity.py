"""The access line names the HTTP Basic user a request presented, escaped, next to its status."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable

import pytest

from est_harness import RunningServer, basic, build_request, csr_body, https, make_csr
from tests.conftest import captured_records

pytestmark = pytest.mark.integration

USER, PASSWORD = "device1", "device1-password"


@pytest.fixture
def server(start_est_server: Callable[[str], RunningServer]) -> RunningServer:
    running = start_est_server("")
    assert running.state.users is not None
    running.state.users.add(USER, PASSWORD)
    return running


def enroll(server: RunningServer, authorization: str) -> tuple[int, str]:
    """POST /simpleenroll; the status and the access line the server logged for it."""
    csr, _ = make_csr(USER)
    headers = {"Content-Type": "application/pkcs10", "Authorization": authorization}
    raw = build_request(
        "POST", "/.well-known/est/simpleenroll", csr_body(csr), headers, server.port
    )
    with captured_records("python_est.server", logging.INFO) as records:
        status = https(server.port, raw, cafile=server.ca_file).status
        # The line is written after the response is sent and the connection closed.
        server.server.shutdown(grace=5.0)
    [line] = [r.getMessage() for r in records if "simpleenroll" in r.getMessage()]
    return status, line


def test_a_basic_authenticated_request_names_its_user(server: RunningServer) -> None:
    status, line = enroll(server, basic(USER, PASSWORD))
    assert status == 200
    assert 'auth=none basic=device1 "POST /.well-known/est/simpleenroll" 200' in line


def test_a_refused_password_shows_the_user_and_the_401(server: RunningServer) -> None:
    status, line = enroll(server, basic(USER, "wrong"))
    assert status == 401
    assert 'auth=none basic=device1 "POST /.well-known/est/simpleenroll" 401 ' in line


@pytest.mark.parametrize(
    ("user", "shown"),
    [
        ("dev'1", "basic=dev'1"),
        ('a" 200 forged', 'basic="a\\" 200 forged"'),
        ("line\nbreak", 'basic="line\\nbreak"'),
        ("back\\slash", 'basic="back\\\\slash"'),
    ],
)
def test_hostile_user_names_stay_on_one_escaped_line(
    server: RunningServer, user: str, shown: str
) -> None:
    token = "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()
    status, line = enroll(server, token)
    assert status == 401
    assert shown in line and "\n" not in line
