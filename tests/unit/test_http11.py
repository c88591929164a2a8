"""Unit and property tests for python_est.server.http11: request framing and response bytes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from python_est.errors import (
    BadRequest,
    EstError,
    HeaderFieldsTooLarge,
    NotImplementedOperation,
    PayloadTooLarge,
)
from python_est.messages import HttpRequest, HttpResponse
from python_est.server.http11 import (
    CONTINUE,
    MAX_EMPTY_LINES,
    MAX_HEADER_BYTES,
    MAX_HEADERS,
    MAX_REQUEST_LINE,
    RequestParser,
    serialize_response,
)

PROPERTY = settings(max_examples=200, deadline=None)
ENROLL = b"POST /.well-known/est/simpleenroll HTTP/1.1\r\nHost: est.example\r\n"


def parse(raw: bytes, **kwargs: int) -> tuple[HttpRequest, bytes]:
    parser = RequestParser(**kwargs)
    request = parser.feed(raw)
    assert request is not None, "request should be complete"
    return request, parser.leftover


def parse_bytewise(raw: bytes, **kwargs: int) -> tuple[HttpRequest, bytes]:
    parser = RequestParser(**kwargs)
    results = [parser.feed(raw[i : i + 1]) for i in range(len(raw))]
    complete = [r for r in results if r is not None]
    assert len(complete) == 1
    return complete[0], parser.leftover


def rejected(raw: bytes, error: type[EstError], **kwargs: int) -> EstError:
    with pytest.raises(error) as caught:
        RequestParser(**kwargs).feed(raw)
    return caught.value


# --- well-formed requests ----------------------------------------------------------------------

GOOD = {
    "get": b"GET /.well-known/est/cacerts HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n",
    "content-length": ENROLL + b"Content-Length: 5\r\n\r\nMIIB=",
    "chunked": ENROLL + b"Transfer-Encoding: chunked\r\n\r\n3\r\nMII\r\n2\r\nB=\r\n0\r\n\r\n",
    "chunk-ext-trailer": ENROLL
    + b"Transfer-Encoding: Chunked\r\n\r\n3 ;name=value;flag\r\nMII\r\nA\r\n0123456789\r\n"
    + b"0\r\nX-Checksum: abc\r\nX-Other: d\r\n\r\n",
    "lf-only": b"POST /x HTTP/1.1\nHost: h\nTransfer-Encoding: chunked\n\n2\nab\n0\n\n",
    "http10": b"GET /x HTTP/1.0\r\n\r\n",
    "leading-crlf": b"\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n",
    "libest-stray-crlf": ENROLL + b"Content-Length: 4\r\n\r\nMAA=\r\n",
}
EXPECTED_BODY = {
    "get": b"",
    "content-length": b"MIIB=",
    "chunked": b"MIIB=",
    "chunk-ext-trailer": b"MII0123456789",
    "lf-only": b"ab",
    "http10": b"",
    "leading-crlf": b"",
    "libest-stray-crlf": b"MAA=",
}


@pytest.mark.parametrize("name", GOOD)
def test_whole_and_bytewise_feeding_agree(name: str) -> None:
    whole, leftover = parse(GOOD[name])
    bytewise, leftover_bytewise = parse_bytewise(GOOD[name])
    assert whole == bytewise
    assert leftover == leftover_bytewise
    assert whole.body == EXPECTED_BODY[name]


def test_request_fields() -> None:
    raw = b"POST /.well-known/est/simpleenroll?x=1 HTTP/1.1\r\nHost: h\r\n"
    raw += b"Content-Type:  application/pkcs10 \t\r\nX-Empty:\r\nContent-Length: 2\r\n\r\nab"
    request, leftover = parse(raw)
    assert request.method == "POST"
    assert request.target == "/.well-known/est/simpleenroll?x=1"
    assert request.path == "/.well-known/est/simpleenroll"
    assert request.headers == (
        ("host", "h"),
        ("content-type", "application/pkcs10"),
        ("x-empty", ""),
        ("content-length", "2"),
    )
    assert request.header("Content-Type") == "application/pkcs10"
    assert request.body == b"ab"
    assert leftover == b""


def test_stray_crlf_after_body_is_left_over() -> None:
    _, leftover = parse(GOOD["libest-stray-crlf"])
    assert leftover == b"\r\n"


def test_stray_crlf_after_get_headers_is_left_over() -> None:
    request, leftover = parse(GOOD["get"] + b"\r\n")
    assert request.body == b"" and leftover == b"\r\n"


def test_bytes_after_completion_collect_in_leftover() -> None:
    parser = RequestParser()
    assert parser.feed(GOOD["get"]) is not None
    assert parser.feed(b"GET /again HTTP/1.1\r\n") is None
    assert parser.leftover == b"GET /again HTTP/1.1\r\n"
    assert parser.request is not None and parser.request.target == "/.well-known/est/cacerts"


def test_post_without_length_has_an_empty_body() -> None:
    request, _ = parse(b"POST /x HTTP/1.1\r\nHost: h\r\n\r\n")
    assert request.body == b""


def test_http10_version_is_recorded() -> None:
    parser = RequestParser()
    parser.feed(GOOD["http10"])
    assert parser.http_version == "HTTP/1.0"


def test_repeated_equal_content_lengths_are_accepted() -> None:
    request, _ = parse(ENROLL + b"Content-Length: 3\r\nContent-Length: 3, 3\r\n\r\nabc")
    assert request.body == b"abc"


def test_headers_complete_before_body() -> None:
    parser = RequestParser()
    assert parser.feed(ENROLL + b"Content-Length: 4\r\n") is None
    assert not parser.headers_complete
    assert parser.feed(b"\r\nMA") is None
    assert parser.headers_complete


# --- Expect: 100-continue -----------------------------------------------------------------------


def test_expect_continue_is_reported_once_headers_are_in() -> None:
    parser = RequestParser()
    assert parser.feed(ENROLL + b"Expect: 100-Continue\r\nContent-Length: 4\r\n\r\n") is None
    assert parser.headers_complete and parser.wants_continue
    request = parser.feed(b"MAA=")
    assert request is not None and request.body == b"MAA="
    assert CONTINUE == b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
        b"POST /x HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        b"POST /x HTTP/1.1\r\nHost: h\r\nExpect: something\r\nContent-Length: 1\r\n\r\n",
    ],
    ids=["no-body", "http10", "other-expectation"],
)
def test_no_continue_without_a_body_or_on_http10(raw: bytes) -> None:
    parser = RequestParser()
    parser.feed(raw)
    assert parser.headers_complete and not parser.wants_continue


# --- limits -------------------------------------------------------------------------------------


def test_request_line_too_long() -> None:
    raw = b"GET /" + b"a" * MAX_REQUEST_LINE + b" HTTP/1.1\r\n"
    error = rejected(raw, BadRequest)
    assert error.status == 400 and error.detail == "request line too long"


def test_request_line_too_long_is_seen_before_its_end() -> None:
    error = rejected(b"GET /" + b"a" * (MAX_REQUEST_LINE + 10), BadRequest)
    assert error.detail == "request line too long"


def test_request_line_at_the_limit_is_accepted() -> None:
    target = b"/" + b"a" * (MAX_REQUEST_LINE - len(b"GET  HTTP/1.1") - 1)
    request, _ = parse(b"GET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert len(request.target) == len(target)


def test_header_section_too_large() -> None:
    raw = ENROLL + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"v" * 1000) for i in range(17))
    error = rejected(raw, HeaderFieldsTooLarge)
    assert error.status == 431


def test_one_huge_header_is_seen_before_its_end() -> None:
    error = rejected(ENROLL + b"X-Big: " + b"v" * 20000, HeaderFieldsTooLarge)
    assert error.status == 431


def test_header_section_exactly_at_the_limit_is_accepted() -> None:
    used = len(ENROLL) - len(ENROLL.split(b"\r\n", 1)[0]) - 2
    pad = MAX_HEADER_BYTES - used - len(b"X-Pad: \r\n")
    request, _ = parse(ENROLL + b"X-Pad: " + b"v" * pad + b"\r\n\r\n")
    assert len(request.header("x-pad") or "") == pad
    rejected(ENROLL + b"X-Pad: " + b"v" * (pad + 1) + b"\r\n\r\n", HeaderFieldsTooLarge)


def test_too_many_header_fields() -> None:
    raw = ENROLL + b"".join(b"X-%d: v\r\n" % i for i in range(MAX_HEADERS))
    error = rejected(raw, HeaderFieldsTooLarge)
    assert str(MAX_HEADERS) in error.detail


def test_content_length_over_the_cap_fails_before_the_body() -> None:
    error = rejected(ENROLL + b"Content-Length: 1001\r\n\r\n", PayloadTooLarge, max_body=1000)
    assert error.status == 413


def test_absurd_content_length_is_too_large() -> None:
    rejected(ENROLL + b"Content-Length: 99999999999999999999999\r\n\r\n", PayloadTooLarge)


def test_body_at_the_cap_is_accepted() -> None:
    request, _ = parse(ENROLL + b"Content-Length: 10\r\n\r\n" + b"x" * 10, max_body=10)
    assert request.body == b"x" * 10


def test_chunked_total_over_the_cap() -> None:
    raw = ENROLL + b"Transfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n5\r\n"
    error = rejected(raw, PayloadTooLarge, max_body=10)
    assert error.status == 413


def test_chunk_size_line_too_long() -> None:
    raw = ENROLL + b"Transfer-Encoding: chunked\r\n\r\n1;" + b"e" * 2000
    rejected(raw, BadRequest)


def test_too_many_leading_empty_lines() -> None:
    request_line = b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    assert parse(b"\r\n" * MAX_EMPTY_LINES + request_line)[0].target == "/x"
    rejected(b"\r\n" * (MAX_EMPTY_LINES + 1) + request_line, BadRequest)


def test_trailer_section_too_large() -> None:
    raw = ENROLL + b"Transfer-Encoding: chunked\r\n\r\n0\r\nX-T: " + b"v" * 17000
    rejected(raw, HeaderFieldsTooLarge)


# --- request smuggling and framing errors --------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "error", "detail"),
    [
        (
            b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n",
            BadRequest,
            "both Transfer-Encoding and Content-Length",
        ),
        (
            b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n",
            BadRequest,
            "both Transfer-Encoding and Content-Length",
        ),
        (b"Content-Length: 3\r\nContent-Length: 4\r\n", BadRequest, "conflicting"),
        (b"Content-Length: 3, 4\r\n", BadRequest, "conflicting"),
        (b"Content-Length: +3\r\n", BadRequest, "invalid Content-Length"),
        (b"Content-Length: -1\r\n", BadRequest, "invalid Content-Length"),
        (b"Content-Length: 0x10\r\n", BadRequest, "invalid Content-Length"),
        (b"Content-Length: \xb2\r\n", BadRequest, "invalid Content-Length"),
        (b"Transfer-Encoding: chunked, gzip\r\n", BadRequest, "must end with chunked"),
        (b"Transfer-Encoding: chunked, chunked\r\n", BadRequest, "must end with chunked"),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", BadRequest, "end with"),
        (b"Transfer-Encoding: identity\r\n", BadRequest, "must end with chunked"),
        (b"Transfer-Encoding: gzip, chunked\r\n", NotImplementedOperation, "only the chunked"),
        (b"Transfer-Encoding: chunked;x=1\r\n", BadRequest, "must end with chunked"),
    ],
)
def test_framing_conflicts(headers: bytes, error: type[EstError], detail: str) -> None:
    raised = rejected(ENROLL + headers + b"\r\nabc", error)
    assert detail in raised.detail


def test_transfer_encoding_on_http10_is_refused() -> None:
    raw = b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    assert "HTTP/1.0" in rejected(raw, BadRequest).detail


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"g\r\nabc\r\n0\r\n\r\n", "invalid chunk size"),
        (b"-1\r\n", "invalid chunk size"),
        (b"\r\n", "invalid chunk size"),
        (b" 3\r\nabc\r\n0\r\n\r\n", "invalid chunk size"),
        (b"3;ext\x00\r\nabc\r\n", "invalid chunk size"),
        (b"11111111111111111\r\n", "invalid chunk size"),
        (b"3\r\nabcX\r\n0\r\n\r\n", "not followed by CRLF"),
        (b"3\r\nabc\rX", "not followed by CRLF"),
        (b"0\r\nbad trailer\r\n\r\n", "malformed header line"),
    ],
)
def test_chunked_errors(body: bytes, detail: str) -> None:
    raw = ENROLL + b"Transfer-Encoding: chunked\r\n\r\n" + body
    assert detail in rejected(raw, BadRequest).detail


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"GET /x HTTP/2.0\r\n\r\n", "unsupported HTTP version"),
        (b"GET /x HTTP/1.1 \r\n\r\n", "malformed request line"),
        (b"GET  /x HTTP/1.1\r\n\r\n", "malformed request line"),
        (b"GET /x\r\n\r\n", "malformed request line"),
        (b"GET /x http/1.1\r\n\r\n", "malformed request line"),
        (b"G(T /x HTTP/1.1\r\n\r\n", "invalid method"),
        (b"GET /\x7f HTTP/1.1\r\n\r\n", "invalid request target"),
        (b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n", "invalid request target"),
        (b"GET /x HTTP/1.1\r\n\r\n", "exactly one Host"),
        (b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "exactly one Host"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n folded\r\n\r\n", "folding"),
        (b"GET /x HTTP/1.1\r\nHost : h\r\n\r\n", "invalid header name"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nno-colon\r\n\r\n", "malformed header line"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\n: v\r\n\r\n", "invalid header name"),
        (b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", "invalid character"),
        (b"GET /x HTTP/1.1\r\nHost: h\rX-A: b\r\n\r\n", "bare CR"),
        (b"GET /x HTTP/1.1\rHost: h\r\n\r\n", "bare CR"),
    ],
)
def test_malformed_heads(raw: bytes, detail: str) -> None:
    error = rejected(raw, BadRequest)
    assert error.status == 400
    assert detail in error.detail


def test_header_values_keep_obs_text() -> None:
    request, _ = parse(b"GET /x HTTP/1.1\r\nHost: h\r\nX-Name: caf\xe9\r\n\r\n")
    assert request.header("x-name") == "caf\xe9"


# --- responses ----------------------------------------------------------------------------------


def test_serialize_keeps_header_case_and_order_and_adds_framing() -> None:
    response = HttpResponse(
        200,
        (
            ("Content-Type", "application/pkcs7-mime; smime-type=certs-only"),
            ("Content-Transfer-Encoding", "base64"),
        ),
        b"MAA=\n",
    )
    assert serialize_response(response) == (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: application/pkcs7-mime; smime-type=certs-only\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Length: 5\r\n"
        b"Connection: close\r\n"
        b"\r\nMAA=\n"
    )


def test_serialize_replaces_a_wrong_content_length() -> None:
    raw = serialize_response(HttpResponse(401, (("content-length", "999"),), b"no"))
    assert raw.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"999" not in raw
    assert raw.count(b"Content-Length: 2\r\n") == 1


def test_serialize_keeps_a_given_connection_header() -> None:
    raw = serialize_response(HttpResponse(204, (("Connection", "close"),)))
    assert raw == b"HTTP/1.1 204 No Content\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"


def test_serialize_unknown_status_has_an_empty_reason() -> None:
    assert serialize_response(HttpResponse(299)).startswith(b"HTTP/1.1 299 \r\n")


@pytest.mark.parametrize(
    "response",
    [
        HttpResponse(100),
        HttpResponse(600),
        HttpResponse(200, (("X-A", "a\r\nSet-Cookie: x"),)),
        HttpResponse(200, (("Bad Name", "v"),)),
        HttpResponse(200, (("Transfer-Encoding", "chunked"),)),
        HttpResponse(200, (("X-A", "\u20ac"),)),
    ],
    ids=["1xx", "600", "crlf-injection", "bad-name", "transfer-encoding", "not-latin-1"],
)
def test_serialize_refuses_broken_responses(response: HttpResponse) -> None:
    with pytest.raises(ValueError):
        serialize_response(response)


def test_serialized_response_parses_back_as_a_message() -> None:
    raw = serialize_response(HttpResponse(200, (("Content-Type", "text/plain"),), b"hello"))
    head, _, body = raw.partition(b"\r\n\r\n")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    assert int(fields[b"Content-Length"]) == len(body) == 5


# --- properties ---------------------------------------------------------------------------------


def _feed_in_pieces(raw: bytes, cuts: list[int], **kwargs: int) -> HttpRequest | None:
    parser = RequestParser(**kwargs)
    edges = sorted({0, len(raw), *(c % (len(raw) + 1) for c in cuts)})
    result = None
    for start, end in itertools.pairwise(edges):
        got = parser.feed(raw[start:end])
        if got is not None:
            assert result is None
            result = got
    return result


@PROPERTY
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=6))
def test_arbitrary_bytes_give_a_request_none_or_an_est_error(data: bytes, cuts: list[int]) -> None:
    try:
        result = _feed_in_pieces(data, cuts, max_body=100)
    except EstError:
        return
    assert result is None or isinstance(result, HttpRequest)


HEADER_VALUE = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=20)


@PROPERTY
@given(
    body=st.binary(max_size=300),
    chunked=st.booleans(),
    sizes=st.lists(st.integers(1, 50), max_size=10),
    extra=st.lists(st.tuples(st.from_regex(r"X-[A-Za-z]{1,8}", fullmatch=True), HEADER_VALUE)),
    cuts=st.lists(st.integers(0, 2000), max_size=8),
)
def test_valid_requests_parse_the_same_however_they_are_split(
    body: bytes,
    chunked: bool,
    sizes: list[int],
    extra: list[tuple[str, str]],
    cuts: list[int],
) -> None:
    head = ENROLL + b"".join(f"{n}: {v}\r\n".encode() for n, v in extra)
    if chunked:
        pieces, rest = [], body
        for size in sizes:
            pieces.append(rest[:size])
            rest = rest[size:]
        pieces.append(rest)
        encoded = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p)
        raw = head + b"Transfer-Encoding: chunked\r\n\r\n" + encoded + b"0\r\n\r\n"
    else:
        raw = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    request = _feed_in_pieces(raw + b"\r\n", cuts)
    assert request is not None
    assert request.body == body
    assert [(n.lower(), v) for n, v in extra] == list(request.headers[1 : 1 + len(extra)])
