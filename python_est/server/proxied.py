"""Reading a PROXY protocol header off an accepted socket, before the TLS handshake."""

from __future__ import annotations

import socket
import time

from python_est.server.proxyproto import MAX_HEADER, ProxyHeaderError, ProxyInfo, parse_proxy_header


class NoProxyHeader(Exception):
    """A trusted proxy's connection brought no valid PROXY header in time (text: the log)."""


def proxied_client(sock: socket.socket, proxy: str, deadline: float) -> tuple[str, bool]:
    """The client address a trusted proxy's PROXY header names.

    Args:
        sock: the accepted socket from `proxy`.
        proxy: the socket's peer address.
        deadline: `time.monotonic()` value by which the header must be complete.

    Returns:
        (address, named): the client's address and True; or `proxy` and False for a header
        that names nobody (LOCAL from a health check, UNKNOWN).

    Raises:
        NoProxyHeader: no valid header before the deadline; the message is the log text.
    """
    try:
        info = read_proxy_header(sock, deadline)
    except ProxyHeaderError as exc:
        raise NoProxyHeader(f"bad PROXY header: {exc.detail}") from None
    except TimeoutError:
        raise NoProxyHeader("no PROXY header before the deadline") from None
    except ConnectionError:
        raise NoProxyHeader("closed before a complete PROXY header") from None
    except OSError as exc:
        raise NoProxyHeader(f"no PROXY header: socket error {exc.__class__.__name__}") from None
    if info.source is None:
        return proxy, False
    return info.source[0], True


def read_proxy_header(sock: socket.socket, deadline: float) -> ProxyInfo:
    """Take exactly the PROXY header off `sock`, leaving the ClientHello unread.

    The header is found with `MSG_PEEK` and then exactly its bytes are received, so the TLS
    layer's own ClientHello peek still sees the first TLS record first. While the header is
    incomplete every byte peeked belongs to it, so those bytes are received too; the next peek
    then blocks until more arrive (no busy loop on a trickling sender).

    Args:
        sock: the accepted socket, from a trusted proxy.
        deadline: `time.monotonic()` value by which the header must be complete (the
            handshake deadline: the header is part of the connection's handshake time).

    Returns:
        What the header says.

    Raises:
        ProxyHeaderError: the bytes are not a valid header.
        TimeoutError: the deadline passed first.
        ConnectionError: the peer closed before the header was complete.
        OSError: any other socket error.
    """
    taken = b""
    while True:
        _arm(sock, deadline)
        data = sock.recv(max(1, MAX_HEADER - len(taken)), socket.MSG_PEEK)
        if not data:
            raise ConnectionError("closed before the PROXY header was complete")
        info, consumed = parse_proxy_header(taken + data)
        if info is not None:
            _take(sock, consumed - len(taken), deadline)
            return info
        _take(sock, len(data), deadline)
        taken += data


def _arm(sock: socket.socket, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise TimeoutError("PROXY header deadline passed")
    sock.settimeout(remaining)


def _take(sock: socket.socket, count: int, deadline: float) -> None:
    # The bytes were peeked, so they are in the receive buffer: this returns at once.
    while count > 0:
        _arm(sock, deadline)
        data = sock.recv(count)
        if not data:
            raise ConnectionError("closed inside the PROXY header")
        count -= len(data)
