"""The PROXY protocol parser: v1 and v2 headers, strict refusals, incremental input, trust."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from python_est.server.proxyproto import (
    MAX_HEADER,
    V1_MAX,
    V2_SIGNATURE,
    ProxyHeaderError,
    ProxyInfo,
    is_trusted,
    parse_proxy_header,
)

PROPERTY = settings(max_examples=300, deadline=None)
HELLO = b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"  # the start of a TLS ClientHello


def v2(
    command: int = 0x1,
    family: int = 0x11,
    block: bytes = b"",
    *,
    version: int = 0x2,
    length: int | None = None,
) -> bytes:
    size = len(block) if length is None else length
    return V2_SIGNATURE + bytes([version << 4 | command, family]) + struct.pack("!H", size) + block


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.ip_address(src).packed
        + ipaddress.ip_address(dst).packed
        + struct.pack("!HH", sport, dport)
    )


# --- version 1 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
            ProxyInfo(1, ("192.168.0.1", 56324), ("192.168.0.11", 443)),
        ),
        (
            b"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
            ProxyInfo(1, ("255.255.255.255", 65535), ("255.255.255.255", 65535)),
        ),
        (b"PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", ProxyInfo(1, ("0.0.0.0", 0), ("10.0.0.1", 0))),
        (
            b"PROXY TCP6 2001:DB8::1 2001:db8:0:0:0:0:0:2 4433 8443\r\n",
            ProxyInfo(1, ("2001:db8::1", 4433), ("2001:db8::2", 8443)),
        ),
        # A dual-stack proxy reports an IPv4 client as IPv4-mapped: counted as IPv4.
        (
            b"PROXY TCP6 ::ffff:203.0.113.7 ::1 1 2\r\n",
            ProxyInfo(1, ("203.0.113.7", 1), ("::1", 2)),
        ),
        (b"PROXY UNKNOWN\r\n", ProxyInfo(1)),
        (b"PROXY UNKNOWN anything at all may follow 1 2 3\r\n", ProxyInfo(1)),
    ],
)
def test_v1_lines_parse_and_leave_what_follows(line: bytes, expected: ProxyInfo) -> None:
    assert parse_proxy_header(line + HELLO) == (expected, len(line))
    assert parse_proxy_header(line) == (expected, len(line))


def test_the_longest_v1_line_is_accepted_and_one_more_byte_is_not() -> None:
    longest = b"PROXY UNKNOWN " + b"f" * (V1_MAX - len(b"PROXY UNKNOWN \r\n")) + b"\r\n"
    assert len(longest) == V1_MAX
    assert parse_proxy_header(longest) == (ProxyInfo(1), V1_MAX)
    too_long = longest[:-2] + b"f\r\n"
    with pytest.raises(ProxyHeaderError, match="no CRLF in the first 107 bytes"):
        parse_proxy_header(too_long)
    with pytest.raises(ProxyHeaderError, match="no CRLF"):
        parse_proxy_header(b"PROXY UNKNOWN " + b"f" * 200)  # no need to wait for more


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",  # LF alone
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\r\n",
        b"PROXY TCP4 192.168.0.1\r192.168.0.11 56324 443\r\n",  # a lone CR inside
        b"PROXY  TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",  # two spaces
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324\r\n",
        b"PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",  # leading zero (octal?)
        b"PROXY TCP4 192.168.0.256 192.168.0.11 56324 443\r\n",
        b"PROXY TCP4 192.168.1 192.168.0.11 56324 443\r\n",
        b"PROXY TCP4 2001:db8::1 192.168.0.11 56324 443\r\n",  # family mismatch
        b"PROXY TCP6 192.168.0.1 2001:db8::2 56324 443\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 443\r\n",  # zone id
        b"PROXY TCP6 [2001:db8::1] 2001:db8::2 56324 443\r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 0443 443\r\n",  # leading zero
        b"PROXY TCP4 192.168.0.1 192.168.0.11 -1 443\r\n",
        b"PROXY TCP4 192.168.0.1 192.168.0.11 +1 443\r\n",
        b"PROXY UDP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        b"PROXY tcp4 192.168.0.1 192.168.0.11 56324 443\r\n",
        b"PROXY\r\n",
        b"PROXY \r\n",
        b"PROXY TCP4 \xc3\xa9 192.168.0.11 56324 443\r\n",
        b"proxy TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        b"PROXYTCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    ],
)
def test_v1_lines_that_do_not_match_exactly_are_refused(line: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(line)


# --- version 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (
            v2(block=inet("203.0.113.7", "10.0.0.11", 50000, 8443)),
            ProxyInfo(2, ("203.0.113.7", 50000), ("10.0.0.11", 8443)),
        ),
        (
            v2(family=0x21, block=inet("2001:db8::7", "2001:db8::b", 1, 443)),
            ProxyInfo(2, ("2001:db8::7", 1), ("2001:db8::b", 443)),
        ),
        # TLVs after the addresses (here NOOP and AUTHORITY) are skipped by the length.
        (
            v2(block=inet("198.51.100.1", "10.0.0.11", 7, 8) + b"\x04\x00\x02xy\x02\x00\x03est"),
            ProxyInfo(2, ("198.51.100.1", 7), ("10.0.0.11", 8)),
        ),
        # LOCAL (health checks): the real endpoints, whatever block is presented.
        (v2(command=0x0, family=0x00), ProxyInfo(2)),
        (v2(command=0x0, block=inet("192.0.2.1", "192.0.2.2", 1, 2)), ProxyInfo(2)),
        # Valid but not TCP: fall back to the real endpoints, as the specification asks.
        (v2(family=0x00), ProxyInfo(2)),
        (v2(family=0x12, block=inet("192.0.2.1", "192.0.2.2", 1, 2)), ProxyInfo(2)),
        (v2(family=0x31, block=b"\0" * 216), ProxyInfo(2)),
    ],
)
def test_v2_headers_parse_and_leave_what_follows(header: bytes, expected: ProxyInfo) -> None:
    assert parse_proxy_header(header + HELLO) == (expected, len(header))


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (v2(version=0x1, block=inet("192.0.2.1", "192.0.2.2", 1, 2)), "unsupported version"),
        (v2(command=0x2, block=inet("192.0.2.1", "192.0.2.2", 1, 2)), "unknown command"),
        (v2(command=0xF), "unknown command"),
        (v2(family=0x41, block=b"\0" * 12), "unknown address family"),
        (v2(family=0x13, block=b"\0" * 12), "unknown address family"),
        (v2(block=b"\0" * 11), "address block too short"),
        (v2(family=0x21, block=b"\0" * 35), "address block too short"),
        (v2(length=MAX_HEADER), "longer than"),
        (V2_SIGNATURE[:11] + b"X" + b"\x21\x11\x00\x0c", "not a PROXY"),
    ],
)
def test_v2_headers_that_do_not_match_are_refused(header: bytes, reason: str) -> None:
    with pytest.raises(ProxyHeaderError, match=reason):
        parse_proxy_header(header + b"\0" * 64)


def test_the_largest_v2_header_is_accepted() -> None:
    noop = MAX_HEADER - 16 - 12 - 3  # one NOOP TLV fills the rest
    block = inet("192.0.2.1", "192.0.2.2", 1, 2) + b"\x04" + struct.pack("!H", noop)
    largest = v2(block=block + b"\0" * noop)
    assert len(largest) == MAX_HEADER
    assert parse_proxy_header(largest)[1] == MAX_HEADER


# --- anything else -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [HELLO, b"GET / HTTP/1.1\r\n", b"\r\n\r\n\r\n", b"\x00", b"PRO\r\n", b"PROXX", b"\rX"],
)
def test_other_protocols_are_refused_at_once(data: bytes) -> None:
    with pytest.raises(ProxyHeaderError):
        parse_proxy_header(data)


def test_an_incomplete_header_asks_for_more_until_it_is_complete() -> None:
    for header in (
        b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n",
        v2(block=inet("203.0.113.7", "10.0.0.11", 50000, 8443) + b"\x04\x00\x01z"),
    ):
        for cut in range(len(header)):
            assert parse_proxy_header(header[:cut]) == (None, 0), cut
        info, consumed = parse_proxy_header(header)
        assert info is not None and consumed == len(header)


# --- properties --------------------------------------------------------------------------------

GARBAGE = st.one_of(
    st.binary(max_size=300),
    st.binary(max_size=300).map(lambda tail: V2_SIGNATURE + tail),
    st.binary(max_size=120).map(lambda tail: b"PROXY " + tail),
    st.text(alphabet="PROXYTCP46UNKOW 0123456789.:abcdef\r\n", max_size=120).map(str.encode),
)


@PROPERTY
@given(GARBAGE)
def test_arbitrary_bytes_give_a_header_a_wait_or_our_error(data: bytes) -> None:
    try:
        info, consumed = parse_proxy_header(data)
    except ProxyHeaderError:
        return
    if info is None:
        assert consumed == 0 and len(data) < MAX_HEADER
        return
    assert 0 < consumed <= len(data)
    assert parse_proxy_header(data[:consumed]) == (info, consumed)


IPV4 = st.ip_addresses(v=4)
IPV6 = st.ip_addresses(v=6)
PORT = st.integers(0, 65535)


@st.composite
def valid_headers(draw: st.DrawFn) -> tuple[bytes, tuple[str, int]]:
    six = draw(st.booleans())
    src, dst = draw(IPV6 if six else IPV4), draw(IPV6 if six else IPV4)
    sport, dport = draw(PORT), draw(PORT)
    client = str(getattr(src, "ipv4_mapped", None) or src)
    if draw(st.booleans()):
        line = f"PROXY TCP{6 if six else 4} {src} {dst} {sport} {dport}\r\n"
        return line.encode(), (client, sport)
    tlvs = draw(st.binary(max_size=200))
    header = v2(family=0x21 if six else 0x11, block=inet(str(src), str(dst), sport, dport) + tlvs)
    return header, (client, sport)


@PROPERTY
@given(valid_headers(), st.binary(max_size=40), st.integers(0, 400))
def test_valid_headers_parse_whole_and_wait_on_every_prefix(
    case: tuple[bytes, tuple[str, int]], tail: bytes, cut: int
) -> None:
    header, client = case
    info, consumed = parse_proxy_header(header + tail)
    assert info is not None and info.source == client and consumed == len(header)
    assert parse_proxy_header(header[: min(cut, len(header) - 1)]) == (None, 0)


# --- trust -------------------------------------------------------------------------------------

NETWORKS = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))


@pytest.mark.parametrize(
    ("address", "trusted"),
    [
        ("127.0.0.1", True),
        ("10.200.3.4", True),
        ("::ffff:10.1.2.3", True),  # a dual-stack listener reports IPv4 peers mapped
        ("127.0.0.2", False),
        ("11.0.0.1", False),
        ("::1", False),
        ("not an address", False),
        ("", False),
    ],
)
def test_only_configured_addresses_are_trusted(address: str, trusted: bool) -> None:
    assert is_trusted(address, NETWORKS) is trusted


def test_ipv6_networks_and_zone_ids() -> None:
    nets = (ipaddress.ip_network("2001:db8::/64"), ipaddress.ip_network("fe80::/10"))
    assert is_trusted("2001:db8::5", nets)
    assert is_trusted("fe80::1%eth0", nets)
    assert not is_trusted("2001:db8:1::5", nets)
    assert not is_trusted("10.0.0.1", nets)
    assert not is_trusted("127.0.0.1", ())
