"""The client's pure pieces: request bytes out, response bytes in, Retry-After, fingerprints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from python_est.client import ClientError, normalize_fingerprint, retry_after_seconds
from python_est.client.est import DEFAULT_RETRY_AFTER
from python_est.client.transport import Endpoint, build_request, read_reply

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def feed(*chunks: bytes) -> Callable[[], bytes]:
    """A recv() that hands out `chunks` one by one, then b"" (end of stream)."""
    pending: Iterable[bytes] = iter(chunks)
    return lambda: next(iter(pending), b"")


def test_request_has_host_length_and_close() -> None:
    raw = build_request(
        Endpoint("::1", 8443), "POST", "/.well-known/est/simpleenroll", [("X-A", "b")], b"abc"
    )
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /.well-known/est/simpleenroll HTTP/1.1"
    assert "Host: [::1]:8443" in lines
    assert "Connection: close" in lines
    assert "Content-Length: 3" in lines
    assert "X-A: b" in lines
    assert body == b"abc"


def test_request_refuses_header_injection() -> None:
    with pytest.raises(ValueError):
        build_request(Endpoint("h"), "GET", "/", [("Authorization", "Basic x\r\nX-Evil: 1")])


def test_reply_by_content_length_across_chunks() -> None:
    reply = read_reply(
        feed(b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\nContent-", b"Length: 5\r\n\r\nhel", b"lo!!"),
        "SUITE",
    )
    assert (reply.status, reply.reason, reply.body) == (200, "OK", b"hello")
    assert reply.header("Content-Type") == "a/b"
    assert reply.cipher_suite == "SUITE"


def test_reply_chunked_and_to_end_of_stream() -> None:
    chunked = read_reply(
        feed(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
    )
    assert chunked.body == b"abcde"
    to_end = read_reply(feed(b"HTTP/1.0 204 No Content\r\n\r\n", b"tail"))
    assert (to_end.status, to_end.body) == (204, b"tail")


@pytest.mark.parametrize(
    "chunks",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",),  # cut short
        (b"HTTP/1.1 200 OK\r\n",),  # no end of head
        (b"SSH-2.0-OpenSSH\r\n\r\n",),  # not HTTP
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",),
        (b"HTTP/1.1 200 OK\r\nbad header line\r\n\r\n",),
    ],
)
def test_malformed_replies_are_client_errors(chunks: tuple[bytes, ...]) -> None:
    with pytest.raises(ClientError):
        read_reply(feed(*chunks))


def test_reply_message_quotes_the_servers_text_reason() -> None:
    reply = read_reply(
        feed(
            b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Length: 25\r\n\r\nForbidden: not your name\n"
        )
    )
    assert reply.message == "HTTP 403 Forbidden: Forbidden: not your name"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120),
        (" 7 ", 7),
        ("0", 1),  # never a busy loop
        (None, DEFAULT_RETRY_AFTER),
        ("soon", DEFAULT_RETRY_AFTER),
        (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90),
        (format_datetime(NOW - timedelta(seconds=90), usegmt=True), 1),
    ],
)
def test_retry_after_seconds_or_http_date(value: str | None, seconds: int) -> None:
    assert retry_after_seconds(value, now=NOW) == seconds


def test_fingerprint_spellings_compare_equal() -> None:
    digits = "AB" * 32
    assert normalize_fingerprint("ab:" * 31 + "ab") == digits
    assert normalize_fingerprint(" ".join(["Ab"] * 32)) == digits
    with pytest.raises(ValueError):
        normalize_fingerprint("AB" * 20)  # a SHA-1 length
    with pytest.raises(ValueError):
        normalize_fingerprint("XY" * 32)
