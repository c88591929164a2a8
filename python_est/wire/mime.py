"""Media types (RFC 9110 §8.3.1) and the /serverkeygen multipart/mixed body (RFC 7030 §4.4.2)."""

from __future__ import annotations

import re

from python_est.errors import MalformedBody, UnsupportedMediaType
from python_est.messages import CERTS_ONLY
from python_est.wire.der import encode_base64, one_line_base64, wrap_base64

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN_RE = re.compile(_TOKEN)
_TYPE_RE = re.compile(rf"[ \t]*({_TOKEN})[ \t]*/[ \t]*({_TOKEN})[ \t]*")
# Token characters that are also RFC 2046 bchars, so the boundary never needs quoting: the libest
# client reads everything after `boundary=` to the end of the line.
_BOUNDARY_RE = re.compile(r"[0-9A-Za-z'+_.\-]{1,70}")
_CRLF = b"\r\n"


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Parse a Content-Type value leniently: case, spaces around `;` and `=`, quoted values.

    Returns:
        The lower-cased `type/subtype` and the parameters (names lower-cased, values unquoted).

    Raises:
        UnsupportedMediaType: no `type/subtype`, or a broken parameter list.
    """
    head, _, rest = value.partition(";")
    match = _TYPE_RE.fullmatch(head)
    if match is None:
        raise UnsupportedMediaType("malformed Content-Type")
    params: dict[str, str] = {}
    for name, param_value in _parameters(rest):
        params.setdefault(name.lower(), param_value)
    return f"{match.group(1)}/{match.group(2)}".lower(), params


def _parameters(text: str) -> list[tuple[str, str]]:
    """Split `a=b; c="d;e"` into pairs; empty segments (`;;`, a trailing `;`) are skipped."""
    pairs = []
    pos = 0
    while pos < len(text):
        pos = _skip(text, pos, " \t;")
        if pos >= len(text):
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise UnsupportedMediaType("malformed Content-Type parameter")
        name = match.group()
        pos = _skip(text, match.end(), " \t")
        if pos >= len(text) or text[pos] != "=":
            raise UnsupportedMediaType("Content-Type parameter without a value")
        pos = _skip(text, pos + 1, " \t")
        param_value, pos = _param_value(text, pos)
        pairs.append((name, param_value))
        pos = _skip(text, pos, " \t")
        if pos < len(text) and text[pos] != ";":
            raise UnsupportedMediaType("malformed Content-Type parameter")
    return pairs


def _skip(text: str, pos: int, chars: str) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _param_value(text: str, pos: int) -> tuple[str, int]:
    if pos < len(text) and text[pos] == '"':
        out = []
        pos += 1
        while pos < len(text):
            char = text[pos]
            if char == "\\" and pos + 1 < len(text):
                out.append(text[pos + 1])
                pos += 2
            elif char == '"':
                return "".join(out), pos + 1
            else:
                out.append(char)
                pos += 1
        raise UnsupportedMediaType("unterminated quoted string in Content-Type")
    match = _TOKEN_RE.match(text, pos)
    if match is None:
        raise UnsupportedMediaType("Content-Type parameter without a value")
    return match.group(), match.end()


def encode_serverkeygen(
    key_der: bytes, key_content_type: str, certs_only_b64: bytes, boundary: str
) -> tuple[str, bytes]:
    """Build the /serverkeygen response (RFC 7030 §4.4.2): key part first, then the certificate.

    Args:
        key_der: DER of the private key part (PKCS#8 PrivateKeyInfo, or CMS when encrypted).
        key_content_type: `application/pkcs8`, or the CMS type for an encrypted key.
        certs_only_b64: the certs-only body, as `encode_certs_only` returns it.
        boundary: 1 to 70 characters from `[0-9A-Za-z'+_.-]`.

    Returns:
        The Content-Type header value and the body, with CRLF line ends. Every part carries
        `Content-Transfer-Encoding: base64`, which the libest client requires.
    """
    if not _BOUNDARY_RE.fullmatch(boundary):
        raise ValueError("multipart boundary must be 1-70 characters of [0-9A-Za-z'+_.-]")
    if "\r" in key_content_type or "\n" in key_content_type:
        raise ValueError("line break in a part Content-Type")
    delimiter = b"--" + boundary.encode("ascii")
    parts = (
        (key_content_type, wrap_base64(encode_base64(key_der), _CRLF)),
        # The libest client prefix-compares this exact spelling on the certificate part.
        (CERTS_ONLY, wrap_base64(certs_only_b64, _CRLF)),
    )
    body = bytearray()
    for content_type, content in parts:
        if delimiter in content:
            raise ValueError("multipart boundary occurs inside a part")
        body += delimiter + _CRLF
        body += f"Content-Type: {content_type}".encode("ascii") + _CRLF
        body += b"Content-Transfer-Encoding: base64" + _CRLF + _CRLF
        body += content
    body += delimiter + b"--" + _CRLF
    return f"multipart/mixed; boundary={boundary}", bytes(body)


def one_line_parts(content_type: str, body: bytes) -> bytes:
    """A multipart body as `encode_serverkeygen` builds it, with each part's base64 on one line.

    Part headers and delimiters are kept byte for byte; only the content between a part's
    blank line and the next delimiter loses its line breaks.

    Raises:
        ValueError: `content_type` has no boundary.
    """
    boundary = parse_media_type(content_type)[1].get("boundary")
    if not boundary:
        raise ValueError("multipart body without a boundary")
    delimiter = b"--" + boundary.encode("ascii")
    out, content, in_headers = bytearray(), bytearray(), False
    for line in body.split(_CRLF)[:-1]:  # the body ends in CRLF
        if line.startswith(delimiter):
            if content:
                out += one_line_base64(bytes(content)) + _CRLF
                content.clear()
            out += line + _CRLF
            in_headers = True
        elif in_headers:
            out += line + _CRLF
            in_headers = bool(line)
        else:
            content += line
    return bytes(out)


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Split a multipart body (RFC 2046 §5.1.1) into its parts.

    Tolerates `multipart/mixed ; boundary=est` (RFC 7030 App. A.4 spacing), a quoted boundary,
    LF-only line ends, a preamble and an epilogue.

    Returns:
        One `(headers, content)` pair per part: header names lower-cased, values stripped;
        content is the raw part body without the line end before the next delimiter.

    Raises:
        MalformedBody: not multipart, no boundary, a missing delimiter, or a bad part header.
    """
    try:
        media_type, params = parse_media_type(content_type)
    except UnsupportedMediaType:
        raise MalformedBody("multipart: malformed Content-Type") from None
    boundary = params.get("boundary", "")
    if not media_type.startswith("multipart/") or not 1 <= len(boundary) <= 70:
        raise MalformedBody("multipart: Content-Type is not multipart with a boundary")
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*(?:\r?\n|\Z)"
    )
    parts: list[tuple[dict[str, str], bytes]] = []
    previous_end: int | None = None
    for match in delimiter.finditer(body):
        if previous_end is not None:
            parts.append(_parse_part(body[previous_end : match.start()]))
        if match.group(1):
            if not parts:
                raise MalformedBody("multipart: no parts")
            return parts
        previous_end = match.end()
    raise MalformedBody("multipart: no closing delimiter")


def _parse_part(raw: bytes) -> tuple[dict[str, str], bytes]:
    separator = re.search(rb"\r?\n\r?\n", raw)
    if raw.startswith((b"\r\n", b"\n")):  # no header fields at all
        return {}, raw[2:] if raw.startswith(b"\r\n") else raw[1:]
    if separator is None:
        raise MalformedBody("multipart: part headers are not followed by a blank line")
    headers: dict[str, str] = {}
    last = ""
    for line in re.split(rb"\r?\n", raw[: separator.start()]):
        text = line.decode("latin-1")
        if text[:1] in (" ", "\t") and last:  # RFC 5322 folding inside MIME part headers
            headers[last] = f"{headers[last]} {text.strip()}".strip()
            continue
        name, colon, value = text.partition(":")
        if not colon or not _TOKEN_RE.fullmatch(name):
            raise MalformedBody("multipart: malformed part header")
        last = name.lower()
        headers[last] = value.strip()
    return headers, raw[separator.end() :]
