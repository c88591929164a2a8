"""`PlainHandshaker`: a connection without TLS, for the plain-HTTP OCSP listener.

Relying parties commonly fetch OCSP over plain HTTP (RFC 6960 appendix A.1 names http); the
answer is a signed statement, so TLS adds nothing to its integrity. The listener is an
`EstServer` like the EST port (bounded workers, absolute deadlines, HTTP/1.1 framing, one
response per connection) whose "handshake" only wraps the socket.
"""

from __future__ import annotations

import socket

from python_est.policy import PeerIdentity, TlsInfo
from python_est.tls.stream import DeadlineSocket

PLAIN = TlsInfo(version="plain", cipher_suite="-")


class PlainStream:
    """A socket under an absolute deadline, with the stream methods `EstServer` uses."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = DeadlineSocket(sock, deadline)

    def set_deadline(self, deadline: float) -> None:
        self._sock.deadline = deadline

    def recv(self, size: int) -> bytes:
        return self._sock.recv(size)

    def sendall(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close(self) -> None:
        """FIN, a short drain, close (as after TLS: unread input would turn it into a reset)."""
        self._sock.close()


class PlainHandshaker:
    """No handshake: the peer is anonymous and the stream is the socket itself."""

    def handshake(
        self, sock: socket.socket, address: str, deadline: float
    ) -> tuple[PlainStream, PeerIdentity]:
        return PlainStream(sock, deadline), PeerIdentity(address=address, tls=PLAIN)
