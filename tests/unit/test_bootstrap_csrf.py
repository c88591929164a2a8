"""Cross-site forgery checks and form tokens of the bootstrap page: tables of hostile inputs."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from python_est.bootstrap.csrf import (
    COOKIE,
    TOKEN_LIFETIME,
    check_origin,
    check_token,
    cookie_header,
    cookie_nonce,
    derive_form_secret,
    is_browser,
    make_token,
    new_nonce,
)
from python_est.errors import Forbidden
from python_est.messages import HttpRequest

SECRET = bytes(range(32))
PATH = "/bootstrap"
NOW = 1_800_000_000.0
HOST = "est.example:8443"


def post(*headers: tuple[str, str]) -> HttpRequest:
    return HttpRequest("POST", PATH, (("host", HOST), *headers), b"")


@pytest.mark.parametrize(
    "headers",
    [
        (),  # curl, scripts
        (("origin", f"https://{HOST}"),),
        (("origin", f"HTTPS://{HOST.upper()}"),),
        (("sec-fetch-site", "same-origin"), ("origin", f"https://{HOST}")),
        (("sec-fetch-site", "same-origin"), ("origin", "null")),  # a no-referrer browser
    ],
)
def test_same_origin_posts_pass(headers: tuple[tuple[str, str], ...]) -> None:
    check_origin(post(*headers))


@pytest.mark.parametrize(
    "headers",
    [
        (("sec-fetch-site", "cross-site"),),
        (("sec-fetch-site", "same-site"),),
        (("sec-fetch-site", "none"),),
        (("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")),
        (("origin", "https://evil.example"),),
        (("origin", "null"),),  # sandboxed frame, data: URL, without Fetch Metadata
        (("origin", f"http://{HOST}"),),  # plain http is another origin
        (("origin", f"https://{HOST}.evil.example"),),
        (("origin", "https://est.example:8444"),),
        (("origin", f"https://{HOST}/path"),),
        (("origin", ""),),
    ],
)
def test_cross_site_posts_are_refused(headers: tuple[tuple[str, str], ...]) -> None:
    with pytest.raises(Forbidden) as refused:
        check_origin(post(*headers))
    assert refused.value.status == 403
    assert "another site" in refused.value.detail


def test_origin_without_host_is_refused() -> None:
    request = HttpRequest("POST", PATH, (("origin", "https://est.example"),), b"")
    with pytest.raises(Forbidden):
        check_origin(request)


def test_default_port_may_be_omitted_on_either_side() -> None:
    request = HttpRequest(
        "POST", PATH, (("host", "est.example:443"), ("origin", "https://est.example")), b""
    )
    check_origin(request)


@pytest.mark.parametrize(
    ("headers", "browser"),
    [
        ((), False),
        ((("user-agent", "curl/8.5.0"),), False),
        ((("user-agent", "python-est/1"),), False),
        ((("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),), True),
        ((("origin", "https://x"),), True),
        ((("sec-fetch-mode", "navigate"),), True),
        ((("Sec-Fetch-Dest", "document"),), True),
    ],
)
def test_what_counts_as_a_browser(headers: tuple[tuple[str, str], ...], browser: bool) -> None:
    assert is_browser(post(*headers)) is browser


def with_cookie(nonce: str) -> HttpRequest:
    return post(("cookie", f"other=1; {COOKIE}={nonce}; x=y"))


def test_a_fresh_token_for_the_cookie_is_accepted() -> None:
    nonce = new_nonce()
    assert cookie_nonce(with_cookie(nonce)) == nonce
    check_token(SECRET, PATH, with_cookie(nonce), make_token(SECRET, PATH, nonce, NOW), NOW)
    # Still fine just before it expires.
    token = make_token(SECRET, PATH, nonce, NOW - TOKEN_LIFETIME + 1)
    check_token(SECRET, PATH, with_cookie(nonce), token, NOW)


def bad_tokens() -> list[tuple[str, HttpRequest, str]]:
    nonce, attacker = new_nonce(), new_nonce()
    good = make_token(SECRET, PATH, nonce, NOW)
    issued, mac = good.split(".")
    return [
        ("no cookie", post(), good),
        ("malformed cookie", post(("cookie", f"{COOKIE}=short")), good),
        ("token of another cookie", with_cookie(nonce), make_token(SECRET, PATH, attacker, NOW)),
        ("another secret", with_cookie(nonce), make_token(bytes(32), PATH, nonce, NOW)),
        ("another page", with_cookie(nonce), make_token(SECRET, "/other", nonce, NOW)),
        ("expired", with_cookie(nonce), make_token(SECRET, PATH, nonce, NOW - TOKEN_LIFETIME - 1)),
        ("from the future", with_cookie(nonce), make_token(SECRET, PATH, nonce, NOW + 3600)),
        ("empty", with_cookie(nonce), ""),
        ("time changed", with_cookie(nonce), f"{int(issued) + 1}.{mac}"),
        ("mac cut", with_cookie(nonce), f"{issued}.{mac[:-1]}"),
        ("no mac", with_cookie(nonce), issued),
        ("negative time", with_cookie(nonce), f"-{issued}.{mac}"),
        ("huge time", with_cookie(nonce), f"{'9' * 40}.{mac}"),
        ("non-ascii mac", with_cookie(nonce), f"{issued}.{mac[:-1]}\u00e9"),
    ]


@pytest.mark.parametrize(("case", "request_", "token"), bad_tokens())
def test_bad_tokens_are_refused(case: str, request_: HttpRequest, token: str) -> None:
    with pytest.raises(Forbidden) as refused:
        check_token(SECRET, PATH, request_, token, NOW)
    assert refused.value.status == 403, case


def test_cookie_is_host_only_secure_httponly_strict() -> None:
    name, value = cookie_header("abc")
    assert name == "Set-Cookie"
    assert value == f"{COOKIE}=abc; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert COOKIE.startswith("__Host-")


def test_the_secret_is_the_same_for_the_same_ca_key_only() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    assert derive_form_secret(key) == derive_form_secret(key)
    secret = derive_form_secret(key)
    assert secret is not None and len(secret) == 32
    assert derive_form_secret(key) != derive_form_secret(ec.generate_private_key(ec.SECP256R1()))
