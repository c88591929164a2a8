"""HTTP/1.1 request framing (RFC 9112) and response serialisation: bytes in, values out.

One request per connection: the server feeds bytes until `RequestParser.feed` returns the
request, answers, and closes. Anything after the request (libest's estclient sends a stray CRLF
that Content-Length does not count) is left in `leftover` and ignored.
"""

from __future__ import annotations

import enum
import http
import re

from python_est.errors import (
    BadRequest,
    EstError,
    HeaderFieldsTooLarge,
    NotImplementedOperation,
    PayloadTooLarge,
)
from python_est.messages import HttpRequest, HttpResponse

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 16 * 1024
MAX_HEADERS = 100
MAX_CHUNK_LINE = 1024
MAX_EMPTY_LINES = 8
DEFAULT_MAX_BODY = 64 * 1024

# Sent by the server when `RequestParser.wants_continue` (RFC 9110 §10.1.1).
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"

_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_TARGET_RE = re.compile(rb"[\x21-\x7e]+")
_VERSION_RE = re.compile(rb"HTTP/[0-9]\.[0-9]")
_SUPPORTED_VERSIONS = {b"HTTP/1.0": "HTTP/1.0", b"HTTP/1.1": "HTTP/1.1"}
# Field values: VCHAR, SP, HTAB and obs-text; every other control character is refused.
_BAD_VALUE_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_DIGITS_RE = re.compile(r"[0-9]+")
_CHUNK_SIZE_RE = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STR_TOKEN_RE = re.compile(_TOKEN.decode("ascii"))


class _State(enum.Enum):
    REQUEST_LINE = enum.auto()
    HEADERS = enum.auto()
    BODY = enum.auto()
    CHUNK_SIZE = enum.auto()
    CHUNK_DATA = enum.auto()
    CHUNK_END = enum.auto()
    TRAILERS = enum.auto()
    DONE = enum.auto()


class RequestParser:
    """Incremental parser for one HTTP/1.0 or HTTP/1.1 request.

    Args:
        max_body: largest accepted body; larger ones raise `PayloadTooLarge` as soon as
            Content-Length or a chunk size shows it.

    Errors are `EstError`s (400, 413, 431, 501); after one, discard the parser.
    """

    def __init__(self, *, max_body: int = DEFAULT_MAX_BODY) -> None:
        self.max_body = max_body
        self.headers_complete = False
        self.wants_continue = False
        self.http_version = ""
        self.leftover = b""
        self.request: HttpRequest | None = None
        self._state = _State.REQUEST_LINE
        self._buf = bytearray()
        self._skipped = 0
        self._method = ""
        self._target = ""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._trailer_bytes = 0
        self._body = bytearray()
        self._remaining = 0

    def feed(self, data: bytes) -> HttpRequest | None:
        """Add received bytes.

        Returns:
            The request the first time it is complete, otherwise None. Bytes after the
            request collect in `leftover`.

        Raises:
            EstError: the request is malformed or over a limit.
        """
        if self.request is not None:
            self.leftover += data
            return None
        self._buf += data
        while self._step():
            if self._state is _State.DONE:
                self.leftover = bytes(self._buf)
                self._buf.clear()
                self.request = HttpRequest(
                    method=self._method,
                    target=self._target,
                    headers=tuple(self._headers),
                    body=bytes(self._body),
                )
                return self.request
        return None

    def _step(self) -> bool:
        """Advance by one element; False when more bytes are needed."""
        handler = {
            _State.REQUEST_LINE: self._request_line,
            _State.HEADERS: self._header_line,
            _State.BODY: self._body_bytes,
            _State.CHUNK_SIZE: self._chunk_size,
            _State.CHUNK_DATA: self._body_bytes,
            _State.CHUNK_END: self._chunk_end,
            _State.TRAILERS: self._trailer_line,
        }[self._state]
        return handler()

    def _take_line(self, limit: int, too_long: EstError) -> bytes | None:
        """Remove and return one line (without its CRLF or LF), or None if it is incomplete.

        RFC 9112 §2.2: a lone LF is accepted as a line end; a CR elsewhere is refused.
        """
        end = self._buf.find(b"\n", 0, limit + 2)
        if end < 0:
            if len(self._buf) >= limit + 2:
                raise too_long
            return None
        line = bytes(self._buf[:end])
        del self._buf[: end + 1]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limit:
            raise too_long
        if b"\r" in line:
            raise BadRequest("bare CR in the request framing")
        return line

    def _request_line(self) -> bool:
        line = self._take_line(MAX_REQUEST_LINE, BadRequest("request line too long"))
        if line is None:
            return False
        if not line:
            # RFC 9112 §2.2: ignore empty lines before the request line (bounded here).
            self._skipped += 1
            if self._skipped > MAX_EMPTY_LINES:
                raise BadRequest("too many empty lines before the request line")
            return True
        parts = line.split(b" ")
        if len(parts) != 3:
            raise BadRequest("malformed request line")
        method, target, version = parts
        if not _TOKEN_RE.fullmatch(method):
            raise BadRequest("invalid method")
        if not _TARGET_RE.fullmatch(target):
            raise BadRequest("invalid request target")
        if version not in _SUPPORTED_VERSIONS:
            if _VERSION_RE.fullmatch(version):
                raise BadRequest("unsupported HTTP version (use HTTP/1.1)")
            raise BadRequest("malformed request line")
        self._method = method.decode("ascii")
        self._target = target.decode("ascii")
        self.http_version = _SUPPORTED_VERSIONS[version]
        self._state = _State.HEADERS
        return True

    def _header_line(self) -> bool:
        # Field lines with their CRLFs count against MAX_HEADER_BYTES.
        budget = max(0, MAX_HEADER_BYTES - self._head_bytes - 2)
        line = self._take_line(budget, HeaderFieldsTooLarge("request header section too large"))
        if line is None:
            return False
        self._head_bytes += len(line) + 2
        if not line:
            self._finish_headers()
            return True
        name, value = _field(line)
        if len(self._headers) >= MAX_HEADERS:
            raise HeaderFieldsTooLarge(f"more than {MAX_HEADERS} header fields")
        self._headers.append((name, value))
        return True

    def _finish_headers(self) -> None:
        self.headers_complete = True
        hosts = self._values("host")
        # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host, or with more than one.
        if len(hosts) > 1 or (self.http_version == "HTTP/1.1" and not hosts):
            raise BadRequest("HTTP/1.1 requests need exactly one Host header")
        codings = self._values("transfer-encoding")
        lengths = self._values("content-length")
        if codings:
            self._start_chunked(codings, lengths)
        elif lengths:
            self._start_fixed(lengths)
        else:
            # RFC 9112 §6.3 (7): a request with neither has an empty body.
            self._state = _State.DONE
        expect = self._values("expect")
        self.wants_continue = (
            self.http_version == "HTTP/1.1"
            and self._state is not _State.DONE
            and [value.lower() for value in expect] == ["100-continue"]
        )

    def _values(self, name: str) -> list[str]:
        return [value for key, value in self._headers if key == name]

    def _start_chunked(self, codings: list[str], lengths: list[str]) -> None:
        # RFC 9112 §6.1: both framings at once is a smuggling vector, and HTTP/1.0 has no
        # transfer codings; both are faulty requests.
        if lengths:
            raise BadRequest("both Transfer-Encoding and Content-Length")
        if self.http_version == "HTTP/1.0":
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        names = [item.strip().lower() for item in ",".join(codings).split(",")]
        # RFC 9112 §6.3 (4): chunked must be the final coding, and only once.
        if names.count("chunked") != 1 or names[-1] != "chunked":
            raise BadRequest("Transfer-Encoding must end with chunked")
        if names != ["chunked"]:
            raise NotImplementedOperation("only the chunked transfer coding is supported")
        self._state = _State.CHUNK_SIZE

    def _start_fixed(self, lengths: list[str]) -> None:
        # RFC 9112 §6.3 (5): repeated or listed values must all be the same valid number.
        values = {item.strip() for item in ",".join(lengths).split(",")}
        if len(values) != 1:
            raise BadRequest("conflicting Content-Length values")
        (value,) = values
        if not _DIGITS_RE.fullmatch(value):
            raise BadRequest("invalid Content-Length")
        if len(value) > 18 or int(value) > self.max_body:
            raise PayloadTooLarge(f"request body over {self.max_body} bytes")
        self._remaining = int(value)
        self._state = _State.BODY if self._remaining else _State.DONE

    def _body_bytes(self) -> bool:
        take = min(len(self._buf), self._remaining)
        if take == 0:
            return False
        self._body += self._buf[:take]
        del self._buf[:take]
        self._remaining -= take
        if self._remaining == 0:
            self._state = _State.DONE if self._state is _State.BODY else _State.CHUNK_END
        return True

    def _chunk_size(self) -> bool:
        line = self._take_line(MAX_CHUNK_LINE, BadRequest("chunk size line too long"))
        if line is None:
            return False
        # RFC 9112 §7.1: chunk-size [ BWS ";" chunk-ext ]; extensions are ignored.
        size, _, extensions = line.partition(b";")
        size = size.rstrip(b" \t")
        if not _CHUNK_SIZE_RE.fullmatch(size) or _BAD_VALUE_RE.search(extensions):
            raise BadRequest("invalid chunk size line")
        length = int(size, 16)
        if length == 0:
            self._state = _State.TRAILERS
            return True
        if len(self._body) + length > self.max_body:
            raise PayloadTooLarge(f"request body over {self.max_body} bytes")
        self._remaining = length
        self._state = _State.CHUNK_DATA
        return True

    def _chunk_end(self) -> bool:
        if self._buf.startswith(b"\r\n"):
            del self._buf[:2]
        elif self._buf.startswith(b"\n"):
            del self._buf[:1]
        elif not self._buf or self._buf == b"\r":
            return False
        else:
            raise BadRequest("chunk data not followed by CRLF")
        self._state = _State.CHUNK_SIZE
        return True

    def _trailer_line(self) -> bool:
        budget = max(0, MAX_HEADER_BYTES - self._trailer_bytes - 2)
        line = self._take_line(budget, HeaderFieldsTooLarge("trailer section too large"))
        if line is None:
            return False
        self._trailer_bytes += len(line) + 2
        if not line:
            self._state = _State.DONE
        else:
            _field(line)  # checked like a header, then dropped (RFC 9112 §7.1.2 allows that)
        return True


def _field(line: bytes) -> tuple[str, str]:
    """Parse `name: value` (RFC 9112 §5); the name is lower-cased, the value stripped of OWS."""
    if line[:1] in (b" ", b"\t"):
        # RFC 9112 §5.2: obs-fold may be refused with 400.
        raise BadRequest("obsolete header line folding is not accepted")
    name, colon, value = line.partition(b":")
    if not colon:
        raise BadRequest("malformed header line")
    # RFC 9112 §5.1: no whitespace between the name and the colon.
    if not _TOKEN_RE.fullmatch(name):
        raise BadRequest("invalid header name")
    value = value.strip(b" \t")
    if _BAD_VALUE_RE.search(value):
        raise BadRequest("invalid character in a header value")
    return name.decode("ascii").lower(), value.decode("latin-1")


def serialize_response(response: HttpResponse) -> bytes:
    """The bytes of a response, framed for clients that read until close.

    Headers keep their exact case and order (the libest client compares names
    case-sensitively); `Content-Length` is always set to the exact body length, replacing any
    given one, and `Connection: close` is added unless a Connection header is present.

    Raises:
        ValueError: a status outside 200-599, a Transfer-Encoding header, or a header name or
            value that would break the framing.
    """
    if not 200 <= response.status <= 599:
        raise ValueError(f"cannot serialise status {response.status}")
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = ""
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    has_connection = False
    for name, value in response.headers:
        if not _STR_TOKEN_RE.fullmatch(name) or _BAD_VALUE_RE.search(value.encode("latin-1")):
            raise ValueError(f"invalid response header {name!r}")
        lower = name.lower()
        if lower == "transfer-encoding":
            raise ValueError("responses are framed by Content-Length only")
        if lower == "content-length":
            continue
        has_connection = has_connection or lower == "connection"
        lines.append(f"{name}: {value}")
    # Also on 204: the checklist's R14 (libest client) wants it everywhere, although RFC 9110
    # §8.6 says a 204 carries none.
    lines.append(f"Content-Length: {len(response.body)}")
    if not has_connection:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body
