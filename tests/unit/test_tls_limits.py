"""The handshake-message bound of the TLS layer (issue 13 item 9), on byte strings."""

from __future__ import annotations

import ssl

import pytest

from python_est.tls.stream import MAX_HANDSHAKE_MESSAGE, oversized_handshake_message


def message(length: int, body: bytes = b"") -> bytes:
    """A handshake message header (type client_hello) claiming `length`, then `body`."""
    return bytes([1]) + length.to_bytes(3, "big") + body


def real_client_hello() -> bytes:
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname="example")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    record = outgoing.read()
    return record[5:]  # one record holds it: strip the record header


@pytest.mark.parametrize(
    ("data", "oversized"),
    [
        (b"", False),
        (b"\x01\xff\xff", False),  # a length header not yet complete: nothing claimed yet
        (message(MAX_HANDSHAKE_MESSAGE), False),  # at the bound, incomplete
        (message(MAX_HANDSHAKE_MESSAGE + 1), True),  # refused at its header, no body needed
        (message(0xFFFFFF), True),  # the 16 MiB a 24-bit length allows
        (message(3, b"abc") + message(0xFFFFFF), True),  # behind a complete message
        (message(3, b"abc") + message(2, b"de"), False),
        (message(3, b"abc") + b"\x0b\x01", False),  # next header still partial
        (message(1 << 20, bytes(100)), True),  # a 1 MiB claim with some body already sent
    ],
)
def test_handshake_messages_over_the_bound_are_found_at_their_header(
    data: bytes, oversized: bool
) -> None:
    assert oversized_handshake_message(data) is oversized
    assert oversized_handshake_message(bytearray(data)) is oversized


def test_a_real_client_hello_is_far_below_the_bound() -> None:
    hello = real_client_hello()
    assert hello[0] == 1 and not oversized_handshake_message(hello)
