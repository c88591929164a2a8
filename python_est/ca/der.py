"""Just enough DER (X.690 §8.1, §10.1) to take apart and rebuild what cryptography signed.

Only ever applied to DER that cryptography itself produced, so definite lengths in their
shortest form are all it meets; anything else is a bug, reported as `CaError`.
"""

from __future__ import annotations

from python_est.errors import CaError

SEQUENCE = 0x30
BIT_STRING = 0x03
OCTET_STRING = 0x04


def children(der: bytes) -> list[bytes]:
    """The encoded elements (tag, length and contents each) inside the constructed `der`."""
    body = contents(der)
    found = []
    offset = 0
    while offset < len(body):
        start, length = _header(body, offset)
        found.append(body[offset : start + length])
        offset = start + length
    return found


def contents(der: bytes) -> bytes:
    """The contents octets of the single element `der`."""
    start, length = _header(der, 0)
    if start + length != len(der):
        raise CaError("cryptography produced an unexpected DER structure")
    return der[start:]


def tlv(tag: int, body: bytes) -> bytes:
    """Encode one element: `tag`, the definite length of `body`, then `body`."""
    size = len(body)
    if size < 0x80:
        return bytes([tag, size]) + body
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + body


def _header(der: bytes, offset: int) -> tuple[int, int]:
    """(offset of the contents, their length) of the element at `offset`."""
    if offset + 2 > len(der):
        raise CaError("cryptography produced an unexpected DER structure")
    first = der[offset + 1]
    if first < 0x80:
        start, length = offset + 2, first
    else:
        start = offset + 2 + (first & 0x7F)
        length = int.from_bytes(der[offset + 2 : start], "big")
    if start + length > len(der):
        raise CaError("cryptography produced an unexpected DER structure")
    return start, length
