"""The test harness's own HTTPS client: what it leaves behind when a server dies under it."""

from __future__ import annotations

import gc
import select
import socket
import ssl
import struct
import threading

import pytest

from est_harness.client import https


def test_a_reset_before_the_handshake_raises_and_leaks_no_socket() -> None:
    # A killed server resets connections it had accepted. CPython's wrap_socket then raises from
    # its pre-handshake check without closing the SSLSocket it made; left to the garbage
    # collector, that is a ResourceWarning, which the suite turns into an error.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        reset = threading.Event()

        def reset_first_connection() -> None:
            conn, _ = listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # linger 0: an RST, not a FIN
            reset.set()

        server = threading.Thread(target=reset_first_connection)
        server.start()
        context = ssl.create_default_context()
        real_wrap = context.wrap_socket

        def wrap_after_the_reset(sock: socket.socket, **kwargs: object) -> ssl.SSLSocket:
            assert reset.wait(10)
            select.select([sock], [], [], 10)  # the RST has arrived
            return real_wrap(sock, **kwargs)  # type: ignore[arg-type]

        context.wrap_socket = wrap_after_the_reset  # type: ignore[method-assign,assignment]
        with pytest.raises(OSError):
            https(port, b"GET / HTTP/1.1\r\n\r\n", context=context, timeout=10)
        server.join(10)
    gc.collect()  # an unclosed SSLSocket would warn here, failing the test
