"""ClientHello peeking and the per-connection route (tlslite-ng#468: one port, two kinds)."""

from __future__ import annotations

import enum
import select
import socket
import time

from tlslite.constants import ContentType, HandshakeType
from tlslite.messages import ClientHello
from tlslite.utils.codec import Parser

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

    Anything that is not one complete, parseable ClientHello in that record takes the
    certificate route, where tlslite refuses it with a proper alert.

    Args:
        record: the 5-byte record header and its fragment.

    Returns:
        SRP when the srp extension is present or an SRP suite is offered (SRP_RSA when one of
        the offered SRP suites is signed with RSA), otherwise CERT.
    """
    fragment = record[5:]
    if len(fragment) < 4 or fragment[0] != HandshakeType.client_hello:
        return Route.CERT
    if int.from_bytes(fragment[1:4], "big") + 4 > len(fragment):
        return Route.CERT  # split across records (rare): tlslite reassembles it on its own
    try:
        hello = ClientHello().parse(Parser(bytearray(fragment[1:])))
    except Exception:  # tlslite's parser raises assorted exceptions on garbage; not ours to sort
        return Route.CERT
    suites = set(hello.cipher_suites)
    if not (hello.srp_username or suites.intersection(_SRP_SUITES)):
        return Route.CERT
    return Route.SRP_RSA if suites & _SRP_RSA_SUITES else Route.SRP


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
        data = sock.recv(need, socket.MSG_PEEK)
        if not data:
            raise HandshakeFailed("peer closed before sending a ClientHello")
        if need == 5 and len(data) == 5:
            length = int.from_bytes(data[3:5], "big")
            plausible = data[0] == ContentType.handshake and data[1] == 3
            if not plausible or not 4 <= length <= _MAX_PLAINTEXT:
                return None
            need = 5 + length
        elif len(data) >= need:
            return data
        elif _peer_hung_up(sock, min(0.01, remaining)):
            return None  # the record will never complete; let tlslite refuse what is there
