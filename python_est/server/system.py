"""The listening socket, and sd_notify(3) datagrams to systemd."""

from __future__ import annotations

import logging
import os
import select
import socket
import struct

log = logging.getLogger("python_est.server")

Listener = socket.socket


def bind_listener(address: str, port: int, backlog: int) -> Listener:
    """Bind and listen on `address`:`port` (IPv6 when the address has a colon).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=backlog)


# struct tcp_info (linux/tcp.h): eight bytes of u8 fields, then u32 rto, ato, snd_mss, rcv_mss,
# unacked. On a listening socket `unacked` is the accept queue's length (sk_ack_backlog).
_TCPI_UNACKED = struct.Struct("=I")
_TCPI_UNACKED_OFFSET = 24


def queued_connections(listener: Listener) -> int:
    """How many connections wait in `listener`'s accept queue (at least 1 if any, without
    TCP_INFO: the queue is then only known to be non-empty)."""
    info_option = getattr(socket, "TCP_INFO", None)
    if info_option is not None and listener.type == socket.SOCK_STREAM:
        try:
            info = listener.getsockopt(socket.IPPROTO_TCP, info_option, 104)
            if len(info) >= _TCPI_UNACKED_OFFSET + _TCPI_UNACKED.size:
                return int(_TCPI_UNACKED.unpack_from(info, _TCPI_UNACKED_OFFSET)[0])
        except OSError:
            pass  # not TCP, or not Linux: fall back to readability
    readable = select.poll()  # poll, not select: no FD_SETSIZE limit
    readable.register(listener, select.POLLIN)
    return 1 if readable.poll(0) else 0


def notify_systemd(message: str) -> bool:
    """Send one sd_notify(3) datagram to `$NOTIFY_SOCKET`, if systemd gave us one.

    An address starting with "@" is an abstract socket (a leading NUL byte on the wire).

    Returns:
        True if the message was sent; False without a socket or when sending failed.
    """
    target = os.environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        log.debug("sd_notify to %s failed: %s", target, exc)
        return False
    return True
