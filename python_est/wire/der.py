"""Base64 bodies (RFC 8951 §3) and a minimal DER TLV reader for framing checks."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from python_est.errors import MalformedBody

# RFC 8951 §3.1: receivers tolerate white space inside base64; these are the four it names.
_WHITESPACE = b" \t\r\n"
_BASE64_RE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_LINE = 64

TAG_INTEGER = 0x02
TAG_OID = 0x06
TAG_SEQUENCE = 0x30
TAG_SET = 0x31
TAG_CONTEXT_0 = 0xA0
TAG_CONTEXT_1 = 0xA1


@dataclass(frozen=True)
class Tlv:
    """One DER element inside a buffer: identifier byte, and where header and content lie."""

    tag: int
    start: int
    content_start: int
    end: int

    def content(self, data: bytes) -> bytes:
        return data[self.content_start : self.end]

    def raw(self, data: bytes) -> bytes:
        return data[self.start : self.end]


def read_tlv(data: bytes, pos: int = 0, limit: int | None = None) -> Tlv:
    """Read the DER element starting at `pos`; it must end at or before `limit`.

    Raises:
        ValueError: truncated input, an indefinite or non-minimal length.
    """
    end_of_data = len(data) if limit is None else limit
    if pos >= end_of_data:
        raise ValueError("truncated DER element")
    tag = data[pos]
    cursor = pos + 1
    if tag & 0x1F == 0x1F:  # high tag number form: base-128 continuation bytes
        while True:
            if cursor >= end_of_data:
                raise ValueError("truncated DER tag")
            cursor += 1
            if not data[cursor - 1] & 0x80:
                break
    if cursor >= end_of_data:
        raise ValueError("truncated DER length")
    first = data[cursor]
    cursor += 1
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        # 0x80 is BER's indefinite length; DER (X.690 §10.1) forbids it and non-minimal forms.
        if count == 0 or count > 4 or cursor + count > end_of_data:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[cursor : cursor + count], "big")
        if length < 0x80 or data[cursor] == 0:
            raise ValueError("non-minimal DER length")
        cursor += count
    if cursor + length > end_of_data:
        raise ValueError("truncated DER content")
    return Tlv(tag=tag, start=pos, content_start=cursor, end=cursor + length)


def children(data: bytes, parent: Tlv) -> list[Tlv]:
    """The elements inside a constructed element; they must fill its content exactly."""
    found = []
    pos = parent.content_start
    while pos < parent.end:
        child = read_tlv(data, pos, parent.end)
        found.append(child)
        pos = child.end
    return found


def check_der_tree(der: bytes, max_depth: int = 32) -> None:
    """Check that `der` is one element whose constructed parts nest and fill exactly.

    pyasn1 trusts inner lengths (a huge one inside an ANY raises OverflowError), so bodies are
    checked here before it sees them.

    Raises:
        ValueError: bad framing anywhere, trailing bytes, or nesting deeper than `max_depth`.
    """
    outer = read_tlv(der)
    if outer.end != len(der):
        raise ValueError("trailing bytes after the DER object")
    stack = [(outer, 0)]
    while stack:
        tlv, depth = stack.pop()
        if not tlv.tag & 0x20:  # primitive
            continue
        if depth >= max_depth:
            raise ValueError("DER nesting too deep")
        stack.extend((child, depth + 1) for child in children(der, tlv))


def single_der_object(der: bytes, what: str) -> Tlv:
    """Check that `der` is exactly one DER element with nothing after it.

    Raises:
        MalformedBody: empty, truncated, or trailing bytes after the element.
    """
    try:
        outer = read_tlv(der)
    except ValueError as exc:
        raise MalformedBody(f"{what}: not a DER object ({exc})") from None
    if outer.end != len(der):
        raise MalformedBody(f"{what}: {len(der) - outer.end} trailing bytes after the DER object")
    return outer


def decode_base64_der(body: bytes, what: str) -> bytes:
    """Decode an EST body: base64 (RFC 4648 §4) of exactly one DER object (RFC 8951 §3).

    Args:
        body: the raw HTTP body.
        what: names the expected content in error details, e.g. "PKCS#10 request".

    Returns:
        The DER bytes.

    Raises:
        MalformedBody: empty, PEM, binary DER, invalid base64, or not one DER object.
    """
    text = body.translate(None, _WHITESPACE)
    if not text:
        raise MalformedBody(f"{what}: empty body")
    if text.startswith(b"-----BEGIN"):
        raise MalformedBody(f"{what}: PEM is not accepted; send base64 DER")
    if not _BASE64_RE.fullmatch(text) or len(text) % 4:
        if body[:1] == b"\x30":
            raise MalformedBody(f"{what}: binary DER is not accepted; send base64 (RFC 8951)")
        if not _BASE64_RE.fullmatch(text):
            raise MalformedBody(f"{what}: invalid base64 character or misplaced padding")
        raise MalformedBody(f"{what}: base64 length is not a multiple of 4 (bad padding)")
    try:
        der = base64.b64decode(text, validate=True)
    except binascii.Error:
        raise MalformedBody(f"{what}: invalid base64") from None
    single_der_object(der, what)
    return der


def encode_base64(der: bytes) -> bytes:
    """Base64 in 64-column lines, each ending in LF (the libest layout).

    Args:
        der: bytes to encode.

    Returns:
        ASCII base64 text; empty for empty input.
    """
    text = base64.b64encode(der)
    return b"".join(text[i : i + _LINE] + b"\n" for i in range(0, len(text), _LINE))


def one_line_base64(text: bytes) -> bytes:
    """The same base64 text on one line, without any line break (RFC 4648 §3.1)."""
    return text.translate(None, _WHITESPACE)


def wrap_base64(text: bytes, newline: bytes) -> bytes:
    """Re-wrap base64 text at 64 columns with `newline` after every line."""
    flat = text.translate(None, _WHITESPACE)
    return b"".join(flat[i : i + _LINE] + newline for i in range(0, len(flat), _LINE))
