"""The PROXY protocol header (HAProxy `send-proxy` / `send-proxy-v2`): bytes in, client address out.

A TCP load balancer that passes TLS through (docs/scale-out.md) connects to us from its own
address; with the PROXY protocol it first writes one header naming the client it relays. Version
1 is one line of text (at most 107 bytes with its CRLF), version 2 a binary block (16 bytes and a
declared length). Both are parsed strictly: anything that does not match the specification
exactly raises `ProxyHeaderError`, and the connection is then closed (the specification asks
receivers to abort on any mismatch).

The parser is incremental-friendly: given the bytes received so far it either needs more (every
byte seen so far then belongs to the header), or returns the header's meaning and its exact
length, so the caller can take exactly those bytes off the socket and leave the TLS ClientHello
behind. Whether a connection may send a header at all is the caller's decision, from
configuration only (`is_trusted`): a header from anyone else would let a client choose the
address it is counted and logged under.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from python_est.errors import BadRequest

V1_PREFIX = b"PROXY "
V1_MAX = 107  # "PROXY UNKNOWN <ipv6> <ipv6> 65535 65535\r\n", the spec's worst case
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED = 16  # signature, version/command, family/transport, length
# The spec allows 16 + 65535 bytes; real senders add a few small TLVs (ALPN, authority, unique
# id, SSL facts, cloud endpoint ids). A bound keeps a peek buffer small.
MAX_HEADER = 4096

_LOCAL, _PROXY = 0x0, 0x1
_INET_STREAM, _INET6_STREAM = 0x11, 0x21
_INET_LENGTH, _INET6_LENGTH = 12, 36
_PORT_RE = re.compile(r"0|[1-9][0-9]{0,4}")
_IPV4_RE = re.compile(r"(?:0|[1-9][0-9]{0,2})(?:\.(?:0|[1-9][0-9]{0,2})){3}")
_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_PRINTABLE_RE = re.compile(rb"[\x20-\x7e]*")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ProxyHeaderError(BadRequest):
    """The bytes are not a valid PROXY protocol header. No response follows: the server closes."""


@dataclass(frozen=True)
class ProxyInfo:
    """What a complete PROXY header said.

    `source` and `destination` are (address, port) of the relayed connection, the address in
    Python's normal text form (an IPv4-mapped IPv6 address as plain IPv4). Both are None when
    the header carries no usable address (v2 LOCAL, as in health checks; v1 UNKNOWN; v2
    UNSPEC, UDP or UNIX): the receiver then uses the connection's own endpoints, as the
    specification says.
    """

    version: int
    source: tuple[str, int] | None = None
    destination: tuple[str, int] | None = None


def parse_proxy_header(data: bytes) -> tuple[ProxyInfo | None, int]:
    """Parse the PROXY header at the start of `data`.

    Args:
        data: the first bytes of a connection (more than the header is fine).

    Returns:
        (info, consumed): the header's meaning and its exact length in bytes; or (None, 0)
        when `data` is a valid beginning of a header that is not complete yet, in which case
        every byte of `data` belongs to the header.

    Raises:
        ProxyHeaderError: `data` does not start with a valid version 1 or 2 header, or the
            header is longer than this receiver accepts.
    """
    if not data:
        return None, 0
    if data[0] == V2_SIGNATURE[0]:
        if data[: len(V2_SIGNATURE)] != V2_SIGNATURE[: len(data)]:
            raise ProxyHeaderError("not a PROXY protocol header")
        return _parse_v2(data)
    if data[: len(V1_PREFIX)] != V1_PREFIX[: len(data)]:
        raise ProxyHeaderError("not a PROXY protocol header")
    return _parse_v1(data)


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    """Whether a connection from `address` may send a PROXY header.

    Args:
        address: the socket's peer address (IPv4-mapped IPv6 counts as its IPv4 address).
        networks: the configured trusted proxies.
    """
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip.version == net.version and ip in net for net in networks)


def _parse_v2(data: bytes) -> tuple[ProxyInfo | None, int]:
    if len(data) < V2_FIXED:
        return None, 0
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2:
        raise ProxyHeaderError("PROXY v2: unsupported version")
    if command not in (_LOCAL, _PROXY):
        # "Receivers must drop connections presenting unexpected values here."
        raise ProxyHeaderError("PROXY v2: unknown command")
    family, transport = data[13] >> 4, data[13] & 0x0F
    if family > 3 or transport > 2:
        raise ProxyHeaderError("PROXY v2: unknown address family or transport")
    length = int.from_bytes(data[14:16], "big")
    total = V2_FIXED + length
    if total > MAX_HEADER:
        raise ProxyHeaderError(f"PROXY v2: header longer than {MAX_HEADER} bytes")
    if len(data) < total:
        return None, 0
    if command == _LOCAL:
        # The proxy's own connection (health check): use the real endpoints, skip the block.
        return ProxyInfo(2), total
    block = data[V2_FIXED:total]
    if data[13] == _INET_STREAM:
        if length < _INET_LENGTH:
            raise ProxyHeaderError("PROXY v2: address block too short")
        src = str(ipaddress.IPv4Address(block[0:4]))
        dst = str(ipaddress.IPv4Address(block[4:8]))
        ports = block[8:12]
    elif data[13] == _INET6_STREAM:
        if length < _INET6_LENGTH:
            raise ProxyHeaderError("PROXY v2: address block too short")
        src = _text(ipaddress.IPv6Address(block[0:16]))
        dst = _text(ipaddress.IPv6Address(block[16:32]))
        ports = block[32:36]
    else:
        # UNSPEC, UDP, UNIX: valid but not a TCP client address; fall back to the real
        # endpoints as the specification asks of receivers that do not implement them.
        return ProxyInfo(2), total
    # Anything after the addresses is TLVs, which we do not use: skipped by `length`.
    sport, dport = int.from_bytes(ports[0:2], "big"), int.from_bytes(ports[2:4], "big")
    return ProxyInfo(2, (src, sport), (dst, dport)), total


def _parse_v1(data: bytes) -> tuple[ProxyInfo | None, int]:
    end = data.find(b"\r\n", 0, V1_MAX)
    if end < 0:
        if len(data) >= V1_MAX:
            raise ProxyHeaderError(f"PROXY v1: no CRLF in the first {V1_MAX} bytes")
        # Not complete yet: what is there must still be the start of one line of text.
        start = data[:-1] if data.endswith(b"\r") else data
        if not _PRINTABLE_RE.fullmatch(start):
            raise ProxyHeaderError("PROXY v1: not a line of printable text")
        return None, 0
    line = data[:end]
    # US-ASCII text only: a lone CR or LF (not a CRLF) ends nothing and is refused here.
    if not _PRINTABLE_RE.fullmatch(line):
        raise ProxyHeaderError("PROXY v1: not a line of printable text")
    consumed = end + 2
    parts = line.decode("ascii").split(" ")  # exactly one space between fields
    if parts[0] != "PROXY" or len(parts) < 2:
        raise ProxyHeaderError("PROXY v1: malformed line")
    if parts[1] == "UNKNOWN":
        # "The receiver must ignore anything presented before the CRLF is found."
        return ProxyInfo(1), consumed
    if parts[1] not in ("TCP4", "TCP6") or len(parts) != 6:
        raise ProxyHeaderError("PROXY v1: malformed line")
    src = _v1_address(parts[2], parts[1])
    dst = _v1_address(parts[3], parts[1])
    return ProxyInfo(1, (src, _v1_port(parts[4])), (dst, _v1_port(parts[5]))), consumed


def _v1_address(text: str, protocol: str) -> str:
    try:
        if protocol == "TCP4":
            # Decimal without leading zeros (no octal confusion), exactly four numbers.
            if _IPV4_RE.fullmatch(text):
                return str(ipaddress.IPv4Address(text))
        elif _IPV6_RE.fullmatch(text) and ":" in text:  # no zone id (%eth0), no brackets
            return _text(ipaddress.IPv6Address(text))
    except ValueError:
        pass
    raise ProxyHeaderError(f"PROXY v1: bad {protocol} address")


def _text(ip: ipaddress.IPv6Address) -> str:
    # A dual-stack proxy reports IPv4 clients as ::ffff:a.b.c.d; log and count them as IPv4.
    return str(ip.ipv4_mapped or ip)


def _v1_port(text: str) -> int:
    if not _PORT_RE.fullmatch(text) or int(text) > 65535:
        raise ProxyHeaderError("PROXY v1: bad port")
    return int(text)
