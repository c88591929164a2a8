"""The light ClientHello scan used for routing agrees with tlslite's full parse."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tlslite.constants import CipherSuite, GroupName
from tlslite.extensions import (
    ALPNExtension,
    SNIExtension,
    SRPExtension,
    SupportedGroupsExtension,
    TLSExtension,
)
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

from python_est.tls import Route, classify_client_hello
from python_est.tls.hello import srp_username

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def as_record(hello: ClientHello) -> bytes:
    body = bytes(hello.write())
    return b"\x16\x03\x01" + len(body).to_bytes(2, "big") + body


def tlslite_view(record: bytes) -> tuple[frozenset[int], bytes] | None:
    """What the route depends on, from tlslite's own parser (the reference)."""
    try:
        hello = ClientHello().parse(Parser(bytearray(record[6:])))
    except Exception:  # any failure: not a ClientHello tlslite accepts
        return None
    return frozenset(hello.cipher_suites), bytes(hello.srp_username or b"")


def expected_route(suites: frozenset[int], user: bytes) -> Route:
    srp = set(range(0xC01A, 0xC023))
    if not (user and suites & srp):
        return Route.CERT
    rsa = {0xC01B, 0xC01E, 0xC021}
    return Route.SRP_RSA if suites & rsa else Route.SRP


SUITE_POOL = [
    CipherSuite.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    CipherSuite.TLS_AES_128_GCM_SHA256,
    CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA,
    CipherSuite.TLS_SRP_SHA_RSA_WITH_AES_128_CBC_SHA,
    CipherSuite.TLS_EMPTY_RENEGOTIATION_INFO_SCSV,
    0x0A0A,  # GREASE
]


@st.composite
def client_hellos(draw: st.DrawFn) -> bytes:
    suites = draw(st.lists(st.sampled_from(SUITE_POOL), min_size=1, max_size=6))
    extensions: list[TLSExtension] = []
    if draw(st.booleans()):
        extensions.append(
            SNIExtension().create(bytearray(draw(st.binary(min_size=1, max_size=20))))
        )
    if draw(st.booleans()):
        extensions.append(SupportedGroupsExtension().create([GroupName.x25519]))
    user = draw(st.binary(min_size=1, max_size=40) | st.none())
    if user is not None:
        extensions.append(SRPExtension().create(bytearray(user)))
    if draw(st.booleans()):
        extensions.append(ALPNExtension().create([bytearray(b"http/1.1")]))
    if draw(st.booleans()):
        unknown = draw(st.binary(max_size=30))
        extensions.append(TLSExtension(extType=0xFE01).create(bytearray(unknown)))
    session = bytearray(draw(st.binary(max_size=32)))
    hello = ClientHello().create(
        (3, 3), bytearray(32), session, suites, extensions=extensions or None
    )
    return as_record(hello)


@PROPERTY
@given(client_hellos())
def test_scan_agrees_with_tlslite_on_well_formed_hellos(record: bytes) -> None:
    reference = tlslite_view(record)
    assert reference is not None
    assert classify_client_hello(record) is expected_route(*reference)
    assert srp_username(record) == (reference[1].decode("utf-8", "replace") or None)


@PROPERTY
@given(client_hellos(), st.data())
def test_truncated_or_padded_hellos_take_the_certificate_route(
    record: bytes, data: st.DataObject
) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(record) - 1))
    assert classify_client_hello(record[:cut]) is Route.CERT
    # One trailing byte inside the handshake message: malformed, tlslite refuses it too.
    body = bytearray(record[5:])
    body[1:4] = (int.from_bytes(body[1:4], "big") + 1).to_bytes(3, "big")
    padded = b"\x16\x03\x01" + (len(body) + 1).to_bytes(2, "big") + bytes(body) + b"\x00"
    assert classify_client_hello(padded) is Route.CERT


def test_openssl_hello_with_grease_and_many_extensions() -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    with pytest.raises(ssl.SSLWantReadError):
        ctx.wrap_bio(incoming, outgoing, server_hostname="est.example").do_handshake()
    record = outgoing.read()
    assert tlslite_view(record) is not None
    assert classify_client_hello(record) is Route.CERT
    assert srp_username(record) is None


def test_srp_extension_with_a_bad_length_is_not_a_hello() -> None:
    hello = ClientHello().create(
        (3, 3),
        bytearray(32),
        bytearray(0),
        [CipherSuite.TLS_SRP_SHA_WITH_AES_256_CBC_SHA],
        extensions=[TLSExtension(extType=12).create(bytearray(b"\x09alice"))],
    )
    assert classify_client_hello(as_record(hello)) is Route.CERT
