"""The connection after the handshake: deadline-bounded I/O, tls-unique capture, close."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

from tlslite.api import TLSConnection
from tlslite.constants import AlertDescription, ContentType
from tlslite.errors import TLSError
from tlslite.messages import Finished

from python_est.tls.fastcipher import FastRecordLayer
from python_est.tls.fastkex import fast_kex, faster_key_exchange
from python_est.tls.fastkeys import fast_public_key
from python_est.tls.sni import ignore_invalid_server_name

_LINGER = 1.0  # seconds to drain after our FIN, so unread bytes do not turn it into an RST
# The largest handshake message we buffer. A length header may claim up to 16 MiB (RFC 5246
# §7.4), and tlslite would gather all of it before parsing, unauthenticated; real
# ClientHellos, client Certificate chains and key exchanges stay far below 64 KiB.
MAX_HANDSHAKE_MESSAGE = 64 * 1024


class DeadlineSocket:
    """The socket tlslite sees: every blocking call gets only the time left to `deadline`.

    Per-call timeouts alone let a client that trickles one byte at a time live forever; an
    absolute deadline bounds the whole handshake (and later the whole request).
    """

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self._sock = sock
        self.deadline = deadline
        self._closed = False

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("connection deadline passed")
        self._sock.settimeout(remaining)

    def recv(self, size: int) -> bytes:
        self._arm()
        return self._sock.recv(size)

    def send(self, data: bytes) -> int:
        self._arm()
        return self._sock.send(data)

    def sendall(self, data: bytes) -> None:
        self._arm()
        self._sock.sendall(data)

    def getpeername(self) -> Any:
        return self._sock.getpeername()

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def settimeout(self, value: float | None) -> None:
        """Ignored: the deadline decides."""

    def gettimeout(self) -> float | None:
        return self._sock.gettimeout()

    def setsockopt(self, level: int, option: int, value: int) -> None:
        self._sock.setsockopt(level, option, value)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        """Send FIN, drain briefly, then close: closing with unread input sends an RST, which
        can destroy the response or alert before the client reads it.

        A socket that `drains_itself` (the server's accepted sockets: its close hands them to
        a thread that drains every closing connection) is closed at once, so the worker does
        not wait for the client's FIN.
        """
        if self._closed:
            return
        self._closed = True
        if getattr(self._sock, "drains_itself", False):
            self._sock.close()
            return
        try:
            self._sock.shutdown(socket.SHUT_WR)
            until = min(self.deadline, time.monotonic() + _LINGER)
            while (remaining := until - time.monotonic()) > 0:
                self._sock.settimeout(remaining)
                if not self._sock.recv(4096):
                    break
        except OSError:
            pass  # the peer is gone or slow; closing is all that is left to do
        finally:
            self._sock.close()


class Connection(TLSConnection):  # type: ignore[misc]
    """Records the first Finished of the latest handshake: RFC 5929 §3.1 tls-unique.

    That is the client's Finished in a full handshake and the server's in an abbreviated one;
    tlslite keeps neither, so the private send/receive hooks are wrapped (tlslite-ng is pinned,
    and tests compare the value with OpenSSL's).
    """

    def __init__(self, sock: DeadlineSocket) -> None:
        super().__init__(sock)
        self.tls_unique: bytes | None = None

    def _handshakeStart(self, client: bool) -> None:  # noqa: N802
        super()._handshakeStart(client)
        self.tls_unique = None

    def _note(self, msg: object) -> None:
        if self.tls_unique is None and isinstance(msg, Finished):
            self.tls_unique = bytes(msg.verify_data)

    def _sendMsg(self, msg: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        self._note(msg)
        return super()._sendMsg(msg, *args, **kwargs)

    def _getMsg(self, *args: Any, **kwargs: Any) -> Iterator[Any]:  # noqa: N802
        for result in super()._getMsg(*args, **kwargs):
            self._note(result)
            ignore_invalid_server_name(result)  # before tlslite checks it (libest sends IPs)
            yield result

    def _getNextRecordFromSocket(self) -> Iterator[Any]:  # noqa: N802
        # Each handshake record is checked before tlslite's defragmenter buffers it, so a
        # message is refused at its length header, before any of its body is kept.
        for result in super()._getNextRecordFromSocket():
            if result in (0, 1):  # tlslite's "would block" markers
                yield result
                continue
            header, parser = result
            if header.type == ContentType.handshake:
                pending = self._defragmenter.buffers[ContentType.handshake] + parser.bytes
                if oversized_handshake_message(pending):
                    # OpenSSL answers an excessive message size with illegal_parameter too.
                    yield from self._sendError(
                        AlertDescription.illegal_parameter,
                        f"handshake message over {MAX_HANDSHAKE_MESSAGE} bytes",
                    )
            yield result


def oversized_handshake_message(data: bytes | bytearray) -> bool:
    """True if a handshake message in `data` (messages back to back, the last possibly
    incomplete) declares a body over `MAX_HANDSHAKE_MESSAGE` bytes (RFC 5246 §7.4 header:
    one type byte, a 24-bit length)."""
    offset = 0
    while offset + 4 <= len(data):
        length = int.from_bytes(data[offset + 1 : offset + 4], "big")
        if length > MAX_HANDSHAKE_MESSAGE:
            return True
        offset += 4 + length
    return False


class FastConnection(Connection):
    """`Connection` with OpenSSL doing record protection and ECDHE, at tlslite's own seams.

    The record layer is tlslite's with OpenSSL ciphers (`fastcipher`); TLS 1.3 key shares come
    from `_getKEX` and the TLS 1.2 ECDHE exchange object is swapped as it enters
    `_serverCertKeyExchange` (`fastkex`); the client certificate's key, which checks its
    CertificateVerify, leaves `_check_certchain_with_settings` wrapped by `fast_public_key`.
    Messages, state machine and checks stay tlslite's.
    """

    def __init__(self, sock: DeadlineSocket) -> None:
        super().__init__(sock)
        self._recordLayer = FastRecordLayer(self.sock)

    @staticmethod
    def _getKEX(group: int, version: tuple[int, int]) -> Any:  # noqa: N802
        return fast_kex(group, version) or TLSConnection._getKEX(group, version)

    def _serverCertKeyExchange(  # noqa: N802
        self,
        clientHello: Any,  # noqa: N803 - tlslite's names
        serverHello: Any,  # noqa: N803
        sigHashAlg: Any,  # noqa: N803
        serverCertChain: Any,  # noqa: N803
        keyExchange: Any,  # noqa: N803
        *rest: Any,
    ) -> Iterator[Any]:
        return super()._serverCertKeyExchange(  # type: ignore[no-any-return]
            clientHello,
            serverHello,
            sigHashAlg,
            serverCertChain,
            faster_key_exchange(keyExchange),
            *rest,
        )

    def _check_certchain_with_settings(
        self,
        cert_chain: Any,
        settings: Any,
    ) -> Iterator[Any]:
        for result in super()._check_certchain_with_settings(cert_chain, settings):
            # 0 and 1 are tlslite's "would block" markers; the last result is the key.
            yield result if result in (0, 1) else fast_public_key(result)


class TlsStream:
    """The application-data side of an established connection, in our own terms.

    `recv` and `sendall` raise `TimeoutError` once the deadline passes and `ConnectionError`
    when TLS fails; `close` sends close_notify and never raises.
    """

    def __init__(self, conn: Connection, sock: DeadlineSocket) -> None:
        self._conn = conn
        self._sock = sock

    @property
    def cipher_implementation(self) -> str:
        """Who protects the records: "cryptography" (OpenSSL) on the fast path, else "python"."""
        return str(self._conn.getCipherImplementation())

    def set_deadline(self, deadline: float) -> None:
        """Move the absolute deadline (a `time.monotonic()` value) for all further I/O."""
        self._sock.deadline = deadline

    def recv(self, size: int) -> bytes:
        """Up to `size` bytes of application data; b"" once the peer has closed."""
        try:
            return bytes(self._conn.recv(size))
        except TLSError as exc:
            raise ConnectionError(f"TLS read failed: {describe(exc)}") from None

    def sendall(self, data: bytes) -> None:
        """Send `data` (as one record when it fits in one)."""
        try:
            self._conn.sendall(data)
        except TLSError as exc:
            raise ConnectionError(f"TLS write failed: {describe(exc)}") from None

    def close(self) -> None:
        """Send close_notify (errors tolerated) and close the socket."""
        try:
            self._conn.close()
        except (TLSError, OSError):
            pass  # the peer may already be gone; close_notify is a courtesy here
        self._sock.close()


def describe(exc: TLSError) -> str:
    """A short log text for a tlslite error: its class, and the alert and reason if any."""
    name: str = type(exc).__name__
    text: str = str(exc)
    if not text or text.startswith((name, "TLS")):
        return name
    return f"{name}: {text}"[:200]
