"""One request in, one response out, over a connection whose handshake is done (`Stream`)."""

from __future__ import annotations

import logging
import time
from typing import Protocol

from python_est.messages import HttpRequest, HttpResponse, text_response
from python_est.server.http11 import CONTINUE, RequestParser, serialize_response

# The server's own logger: these lines are the connection loop's (`loop`).
log = logging.getLogger("python_est.server")

_RECV_SIZE = 65536


class Stream(Protocol):
    """A connection after its handshake (`python_est.tls.TlsStream`, or plain: `plain`)."""

    def set_deadline(self, deadline: float) -> None: ...

    def recv(self, size: int) -> bytes: ...

    def sendall(self, data: bytes) -> None: ...

    def close(self) -> None: ...


def read_request(
    stream: Stream, parser: RequestParser, *, header_timeout: float, request_timeout: float
) -> HttpRequest:
    """Read one request from `stream` through `parser`, sending 100 Continue when asked.

    Raises:
        EstError: the request is malformed or too large (`http11`).
        TimeoutError: a deadline passed.
        OSError: the connection failed or the peer closed it first.
    """
    # Two absolute deadlines from the handshake's end: the head must be in within
    # header_timeout, the whole request (and then the response) within request_timeout.
    begun = time.monotonic()
    end = begun + request_timeout
    stream.set_deadline(min(end, begun + header_timeout))
    continued = False
    try:
        while True:
            data = stream.recv(_RECV_SIZE)
            if not data:
                raise ConnectionError("peer closed before the request was complete")
            request = parser.feed(data)
            if request is not None:
                return request
            if parser.headers_complete:
                stream.set_deadline(end)
            if parser.wants_continue and not continued:
                # RFC 9110 §10.1.1: the client waits for this before sending the body.
                stream.sendall(CONTINUE)
                continued = True
    finally:
        stream.set_deadline(end)


def serialized(response: HttpResponse) -> bytes:
    """`response` on the wire; a 500 when the handler returned one that cannot be sent."""
    try:
        return serialize_response(response)
    except ValueError:
        log.exception("handler returned a response that cannot be sent")
        return serialize_response(text_response(500, "Internal Server Error"))
