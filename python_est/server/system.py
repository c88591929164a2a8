"""The listening socket, and sd_notify(3) datagrams to systemd."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("python_est.server")

Listener = socket.socket


def bind_listener(address: str, port: int, backlog: int) -> Listener:
    """Bind and listen on `address`:`port` (IPv6 when the address has a colon).

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return socket.create_server((address, port), family=family, backlog=backlog)


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
