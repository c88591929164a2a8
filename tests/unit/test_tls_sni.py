"""`tls.sni`: which server names are ignored, and that ignoring one changes no byte on the wire."""

from __future__ import annotations

import pytest
from tlslite.constants import CipherSuite, ExtensionType
from tlslite.extensions import SNIExtension, TLSExtension
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

from python_est.tls.sni import ignore_invalid_server_name

SUITES = [CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]


def hello(*names: bytes, other: tuple[SNIExtension.ServerName, ...] = ()) -> ClientHello:
    """A ClientHello parsed from the wire, as tlslite hands it to the server."""
    sni = SNIExtension().create(hostNames=list(names) or None, serverNames=list(other) or None)
    alpn = TLSExtension(extType=ExtensionType.alpn).create(bytearray(b"\x00\x09\x08http/1.1"))
    built = ClientHello().create(
        (3, 3), bytearray(32), bytearray(0), SUITES, extensions=[sni, alpn]
    )
    wire = built.write()
    return ClientHello().parse(Parser(wire[1:]))


@pytest.mark.parametrize(
    "name",
    [
        b"127.0.0.1",  # libest `-s 127.0.0.1`
        b"192.0.2.10.",
        b"10",
        b"::1",
        b"[2001:db8::1]",
        b"under_score.example",
        b"-leading-hyphen.example",
        b"double..dot.example",
        b"caf\xc3\xa9.example",  # not ASCII (an A-label would be valid)
        b"a" * 64 + b".example",  # a label over 63 octets (RFC 1035 §2.3.4)
        b"host name.example",
    ],
)
def test_a_name_that_is_not_a_dns_host_name_is_treated_as_absent(name: bytes) -> None:
    message = hello(name)
    before = bytes(message.write())
    ignore_invalid_server_name(message)
    sni = message.getExtension(ExtensionType.server_name)
    assert not sni and sni.hostNames == ()
    assert message.server_name == bytearray(0)
    # PSK binders and HelloRetryRequest checks re-serialise the hello: it must not change.
    assert bytes(message.write()) == before


@pytest.mark.parametrize(
    "name", [b"est.example.com", b"est.example.com.", b"localhost", b"xn--caf-dma.example", b"a1"]
)
def test_a_dns_host_name_is_kept(name: bytes) -> None:
    message = hello(name)
    ignore_invalid_server_name(message)
    assert message.getExtension(ExtensionType.server_name)
    assert message.server_name == bytearray(name)


@pytest.mark.parametrize(
    "message",
    [
        hello(b"127.0.0.1", b"est.example"),  # several host names: illegal_parameter (RFC 6066 §3)
        hello(b""),  # an empty name: decode_error
        hello(other=(SNIExtension.ServerName(1, bytearray(b"x")),)),  # no host_name entry
    ],
)
def test_what_tlslite_must_refuse_is_left_alone(message: ClientHello) -> None:
    sni = message.getExtension(ExtensionType.server_name)
    ignore_invalid_server_name(message)
    assert message.getExtension(ExtensionType.server_name) is sni


def test_a_hello_without_sni_and_other_messages_pass_through() -> None:
    plain = ClientHello().create((3, 3), bytearray(32), bytearray(0), SUITES)
    ignore_invalid_server_name(plain)
    assert plain.extensions is None
    ignore_invalid_server_name(0)  # tlslite's "would block" marker
