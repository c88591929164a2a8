"""ClientHello peeking and the per-connection route (tlslite-ng#468: one port, two kinds)."""

from __future__ import annotations

import enum
import select
import socket
import time

from tlslite.constants import ContentType, ExtensionType, HandshakeType

from python_est.errors import HandshakeFailed

_SRP_SUITES = range(0xC01A, 0xC022 + 1)  # RFC 5054 §2.7
_SRP_RSA_SUITES = frozenset({0xC01B, 0xC01E, 0xC021})
_MAX_PLAINTEXT = 2**14  # RFC 5246 §6.2.1
_POLLRDHUP = getattr(select, "POLLRDHUP", 0)  # Linux: the peer shut down its sending side


class Route(enum.Enum):
    """Which credentials a connection's handshake gets, decided from its ClientHello."""

    CERT = "cert"
    SRP = "srp"
    SRP_RSA = "srp-rsa"


def classify_client_hello(record: bytes) -> Route:
    """Decide the handshake route from the first TLS record of a connection.

    Anything that is not one complete, well-formed ClientHello in that record takes the
    certificate route, where tlslite refuses it with a proper alert.

    Args:
        record: the 5-byte record header and its fragment.

    Returns:
        SRP when the srp extension carries a user name and an SRP suite is offered (SRP_RSA
        when one of the offered SRP suites is signed with RSA), otherwise CERT.
    """
    hello = _scan_client_hello(record)
    if hello is None:
        return Route.CERT
    suites, user = hello
    # An SRP handshake needs both (RFC 5054 §2.5.1.1); a hello with only one of them can only
    # succeed with a certificate suite. Scanners such as testssl.sh offer every suite, SRP ones
    # included, without a user name: on the SRP route they were refused.
    if not (user and suites.intersection(_SRP_SUITES)):
        return Route.CERT
    return Route.SRP_RSA if suites & _SRP_RSA_SUITES else Route.SRP


def srp_username(record: bytes) -> str | None:
    """The SRP user name (RFC 5054 §2.8.1 srp extension) in the first TLS record, if any.

    Used to count failed SRP logins per user; undecodable bytes become U+FFFD.
    """
    hello = _scan_client_hello(record)
    if hello is None or not hello[1]:
        return None
    return hello[1].decode("utf-8", "replace")


def _scan_client_hello(record: bytes) -> tuple[frozenset[int], bytes] | None:
    """The offered cipher suites and the srp extension's user name (b"" if none).

    tlslite parses the whole ClientHello again in the handshake; routing needs two fields, and
    walking the structure (RFC 5246 §7.4.1.2, RFC 5054 §2.8.1) costs a tenth of a full parse.
    None when the record does not hold exactly one well-formed ClientHello.
    """
    fragment = record[5:]
    if len(fragment) < 4 or fragment[0] != HandshakeType.client_hello:
        return None
    length = int.from_bytes(fragment[1:4], "big")
    if length + 4 > len(fragment):
        return None  # split across records (rare): tlslite reassembles it on its own
    reader = _Reader(fragment[4 : 4 + length])
    reader.take(2 + 32)  # client_version, random
    reader.vector(1)  # session_id
    suites = reader.vector(2)
    reader.vector(1)  # compression_methods
    if reader.failed or len(suites) % 2:
        return None
    offered = frozenset(int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2))
    user = b""
    if reader.remaining:
        extensions = _Reader(reader.vector(2))
        while extensions.remaining and not extensions.failed:
            kind = int.from_bytes(extensions.take(2), "big")
            data = extensions.vector(2)
            if kind == ExtensionType.srp:
                identity = _Reader(data)
                user = identity.vector(1)
                if identity.failed or identity.remaining:
                    return None
        if extensions.failed:
            return None
    return None if reader.failed or reader.remaining else (offered, user)


class _Reader:
    """Bounds-checked reads of TLS vectors; any overrun sets `failed` and yields b""."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0
        self.failed = False

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int) -> bytes:
        if self.failed or size > self.remaining:
            self.failed = True
            return b""
        self._pos += size
        return self._data[self._pos - size : self._pos]

    def vector(self, length_bytes: int) -> bytes:
        return self.take(int.from_bytes(self.take(length_bytes), "big") if not self.failed else 0)


def _peer_hung_up(sock: socket.socket, wait: float) -> bool:
    """Wait up to `wait` seconds for more of a record; True if the peer has shut down writing.

    Peeking returns at once while any bytes are queued, so this is the pause between peeks.
    """
    if _POLLRDHUP == 0:
        time.sleep(wait)
        return False
    poller = select.poll()
    poller.register(sock, _POLLRDHUP)
    return bool(poller.poll(wait * 1000))


def peek_first_record(sock: socket.socket, deadline: float) -> bytes | None:
    """The first TLS record, read with MSG_PEEK so that tlslite still reads it in full.

    Returns None when the first bytes are not a plausible handshake record.
    """
    need = 5
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no ClientHello before the deadline")
        sock.settimeout(remaining)
        # One peek of up to a whole record: usually the ClientHello is all there already.
        data = sock.recv(5 + _MAX_PLAINTEXT, socket.MSG_PEEK)
        if not data:
            raise HandshakeFailed("peer closed before sending a ClientHello")
        if need == 5 and len(data) >= 5:
            length = int.from_bytes(data[3:5], "big")
            plausible = data[0] == ContentType.handshake and data[1] == 3
            if not plausible or not 4 <= length <= _MAX_PLAINTEXT:
                return None
            need = 5 + length
        if need > 5 and len(data) >= need:
            return data[:need]
        if _peer_hung_up(sock, min(0.01, remaining)):
            return None  # the record will never complete; let tlslite refuse what is there
